import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { TenantId } from '../auth/tenant-id.decorator';
import { ApiValidationProblemResponse } from '../common/problem-details/api-problem-response.decorator';
import { MessageDto } from '../messages/dto/message.dto';
import { SearchPageDto } from './dto/search-hit.dto';
import { SearchQueryDto } from './dto/search.query';
import { SearchService } from './search.service';

@ApiTags('search')
@Controller('search')
export class SearchController {
  constructor(private readonly searches: SearchService) {}

  @Get()
  @ApiOperation({
    summary: "Search the caller's messages",
    description:
      'Every chat and every branch: the messages that contain every word of `q` (in any letter case; word stems ' +
      'where the storage supports them), best match first, then newest. A message is found as soon as its turn has ' +
      'stored it, and never after its chat is deleted.',
  })
  @ApiOkResponse({ type: SearchPageDto })
  @ApiValidationProblemResponse('q: q must not be blank')
  async search(@TenantId() tenantId: string, @Query() query: SearchQueryDto): Promise<SearchPageDto> {
    const page = await this.searches.search(tenantId, query);
    return {
      data: page.data.map(({ message, ...hit }) => ({ ...hit, message: MessageDto.from(message) })),
      nextCursor: page.nextCursor,
    };
  }
}
