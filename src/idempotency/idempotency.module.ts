import { Module } from '@nestjs/common';
import { StorageModule } from '../storage/storage.module';
import { IdempotencyService } from './idempotency.service';

@Module({
  imports: [StorageModule],
  providers: [IdempotencyService],
  exports: [IdempotencyService],
})
export class IdempotencyModule {}
