import { Module } from '@nestjs/common';
import { SearchController } from './search.controller';
import { SearchService } from './search.service';

/** `GET /search`: the storage module binds the index it asks (MessageSearch). */
@Module({
  controllers: [SearchController],
  providers: [SearchService],
})
export class SearchModule {}
