import { Type } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';

/** Builds the `?limit=&cursor=` query DTO for a list with its own limit range and default. */
export function PageQuery(options: {
  maxLimit: number;
  defaultLimit: number;
}): Type<{ limit: number; cursor?: string }> {
  class PageQueryDto {
    @ApiPropertyOptional({
      type: 'integer',
      minimum: 1,
      maximum: options.maxLimit,
      default: options.defaultLimit,
      example: options.defaultLimit,
    })
    @IsOptional()
    // Plain decimals only: Number() would read `0x10`, `1e1`, ` 5` or `` as numbers nobody wrote.
    @Transform(({ value }: { value: unknown }) =>
      typeof value !== 'string' ? value : /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN,
    )
    @Max(options.maxLimit)
    @Min(1)
    @IsInt()
    limit: number = options.defaultLimit;

    // No example: Swagger UI would send it, and a cursor of another list is refused (422).
    @ApiPropertyOptional({
      description: "The previous page's `nextCursor`, as it was given: an opaque base64url string of this list",
    })
    @IsOptional()
    @MaxLength(512)
    @IsString()
    cursor?: string;
  }
  return PageQueryDto;
}
