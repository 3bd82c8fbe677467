import { ArgumentMetadata, Injectable, Type, ValidationError, ValidationPipe } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validateSync, ValidatorOptions } from 'class-validator';
import { FieldError, RequestValidationError } from '../errors/domain-error';

/** How every request DTO is checked: its rules, and no field it does not declare. */
const VALIDATOR_OPTIONS: ValidatorOptions = {
  whitelist: true,
  forbidNonWhitelisted: true,
  forbidUnknownValues: true,
  validationError: { target: false, value: false },
};

const isEmpty = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && Object.keys(value).length === 0;

function flatten(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...flatten(error.children ?? [], field)];
  });
}

/** The errors `value` has by the rules of `Dto`, as the pipe would answer them for a body. */
export function fieldErrorsOf(Dto: Type<object>, value: object): FieldError[] {
  return flatten(validateSync(plainToInstance(Dto, value), VALIDATOR_OPTIONS));
}

/**
 * Where the first string holding U+0000 is in a request's body or query, as a field path
 * (`messages[12].content`); null when there is none. PostgreSQL cannot store the character, so it
 * is refused on every storage alike.
 */
function firstNulCharacter(value: unknown, path: string): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path || 'body' : null;
  if (typeof value !== 'object' || value === null) return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = firstNulCharacter(value[i], `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  for (const [key, item] of Object.entries(value)) {
    const found = key.includes('\u0000')
      ? `${path}${path ? '.' : ''}${key}`
      : firstNulCharacter(item, path ? `${path}.${key}` : key);
    if (found) return found;
  }
  return null;
}

/**
 * The one validation pipe: DTO rules, unknown fields rejected, 422 with per-field errors.
 * A request without a body validates as `{}` so optional bodies stay optional; a body that is
 * not a JSON object is a validation error rather than a crash.
 */
@Injectable()
export class RequestValidationPipe extends ValidationPipe {
  /** Whether a query DTO accepts an empty query, worked out once per DTO. */
  private readonly emptyQueryIsValid = new WeakMap<object, boolean>();

  constructor() {
    super({
      ...VALIDATOR_OPTIONS,
      transform: true,
      exceptionFactory: (errors) => new RequestValidationError(flatten(errors)),
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' || metadata.type === 'query') {
      const field = firstNulCharacter(value, '');
      if (field) throw new RequestValidationError([{ field, message: `${field} must not contain U+0000 (NUL)` }]);
    }
    // Most requests carry no query string; validating `{}` again for every one cost a streamed
    // turn a tenth of a millisecond before its first byte.
    if (metadata.type === 'query' && metadata.metatype && isEmpty(value)) {
      let valid = this.emptyQueryIsValid.get(metadata.metatype);
      if (valid === undefined) {
        valid = await super.transform({}, metadata).then(
          () => true,
          () => false,
        );
        this.emptyQueryIsValid.set(metadata.metatype, valid);
      }
      if (valid) return plainToInstance(metadata.metatype, {});
    }
    if (metadata.type === 'body') {
      if (value === undefined) value = {};
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new RequestValidationError([{ field: 'body', message: 'the body must be a JSON object' }]);
      }
    }
    return super.transform(value, metadata);
  }
}
