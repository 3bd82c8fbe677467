import { applyDecorators } from '@nestjs/common';
import { ApiProperty } from '@nestjs/swagger';
import { ValidateBy, ValidationOptions } from 'class-validator';

/**
 * A string with something other than white space in it; its OpenAPI schema says so too (`\S` is
 * what `trim()` keeps). Merged into the property's own `ApiProperty`, above or below it.
 */
export const IsNotBlank = (options?: ValidationOptions) =>
  applyDecorators(
    ValidateBy(
      {
        name: 'isNotBlank',
        validator: {
          validate: (value: unknown) => typeof value === 'string' && value.trim().length > 0,
          defaultMessage: () => '$property must not be blank',
        },
      },
      options,
    ),
    ApiProperty({ minLength: 1, pattern: '\\S' }),
  );
