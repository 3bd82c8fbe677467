import { Injectable, PipeTransform } from '@nestjs/common';
import { RequestValidationError } from '../errors/domain-error';

/** A route that takes no body: none, or `{}`. Anything else is a 422 that names what should not be there. */
@Injectable()
export class EmptyBodyPipe implements PipeTransform<unknown, void> {
  transform(value: unknown): void {
    if (value === undefined) return;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new RequestValidationError([{ field: 'body', message: 'the body must be empty or {}' }]);
    }
    const fields = Object.keys(value);
    if (fields.length > 0) {
      throw new RequestValidationError(
        fields.map((field) => ({ field, message: `property ${field} should not exist` })),
      );
    }
  }
}
