import { ArgumentMetadata, Injectable, PipeTransform } from '@nestjs/common';
import { ApiBody } from '@nestjs/swagger';
import { RequestValidationError } from '../errors/domain-error';
import { ApiValidationProblemResponse } from '../problem-details/api-problem-response.decorator';

/**
 * The body or query of a route that takes none: absent, or `{}`. Anything else is a 422 that names
 * what should not be there, as an unknown field of a DTO is: `@Query(NoFieldsPipe) _query: void`.
 */
@Injectable()
export class NoFieldsPipe implements PipeTransform<unknown, void> {
  transform(value: unknown, { type }: ArgumentMetadata): void {
    if (value === undefined) return;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new RequestValidationError([{ field: type, message: `the ${type} must be empty or {}` }]);
    }
    const fields = Object.keys(value);
    if (fields.length > 0) {
      throw new RequestValidationError(
        fields.map((field) => ({ field, message: `property ${field} should not exist` })),
      );
    }
  }
}

/** The OpenAPI side of `@Body(NoFieldsPipe)`: an optional body, `{}` at most. */
export const ApiNoBody = () => ApiBody({ required: false, schema: { type: 'object', maxProperties: 0, example: {} } });

/** The 422 of a route that validates nothing else: a query parameter (or body field) it does not take. */
export const ApiUnknownFieldResponse = (field = 'foo') =>
  ApiValidationProblemResponse(`${field}: property ${field} should not exist`);
