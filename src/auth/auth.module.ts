import { Module } from '@nestjs/common';
import { APP_GUARD, DiscoveryModule } from '@nestjs/core';
import { ApiKeyGuard } from './api-key.guard';

/**
 * Imported before the rate limiter, so its guard runs first and the limiter sees the tenant.
 * Discovery lists the routes that need a key for apiKeyCheck.
 */
@Module({ imports: [DiscoveryModule], providers: [{ provide: APP_GUARD, useClass: ApiKeyGuard }] })
export class AuthModule {}
