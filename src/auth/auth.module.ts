import { Module } from '@nestjs/common';
import { APP_GUARD, DiscoveryModule } from '@nestjs/core';
import { ApiKeyGuard } from './api-key.guard';

/** The API-key guard; discovery lists the routes that need a key for apiKeyCheck. */
@Module({ imports: [DiscoveryModule], providers: [{ provide: APP_GUARD, useClass: ApiKeyGuard }] })
export class AuthModule {}
