import { ArgumentMetadata, Injectable, Type, ValidationError, ValidationPipe } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { ValidatorOptions } from 'class-validator';
import { FieldError, RequestValidationError } from '../errors/domain-error';
import { stringMapFieldsOf } from './is-string-map.decorator';
import { textProblem } from './storable-text';

/** How every request DTO is checked: its rules, and no field it does not declare. */
const VALIDATOR_OPTIONS: ValidatorOptions = {
  // One error a field, the most basic: class-validator runs a property's decorators bottom-up,
  // so a DTO writes presence, then type, nearest the property, and its limits above them.
  stopAtFirstError: true,
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

/** The string maps of bodies being read, whose keys the pipe leaves as they were sent. */
const keptAsSent = new WeakSet<object>();

/** Deeper than any body or query of the API; walking or transforming a deeper one could exhaust the stack. */
const MAX_DEPTH = 32;

/**
 * The first text in a request's body or query that no storage could keep as sent (see
 * {@link textProblem}), as a field error with its path (`messages[12].content`); null when there
 * is none, so that every storage refuses it alike. Walked without recursion: any depth is answered.
 */
function unstorableText(root: unknown): FieldError | null {
  const pending: [value: unknown, path: string, depth: number][] = [[root, '', 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [value, path, depth] = next;
    if (typeof value === 'string') {
      const problem = textProblem(value);
      if (problem) return { field: path || 'body', message: `${path || 'body'} ${problem}` };
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    if (depth === MAX_DEPTH) {
      return {
        field: path || 'body',
        message: `${path || 'body'} must not be nested more than ${MAX_DEPTH} levels deep`,
      };
    }
    const children: [unknown, string, number][] = [];
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) children.push([value[i], `${path}[${i}]`, depth + 1]);
    } else {
      for (const [key, item] of Object.entries(value)) {
        const field = path ? `${path}.${key}` : key;
        const problem = textProblem(key);
        if (problem) return { field, message: `${field} ${problem}` };
        children.push([item, field, depth + 1]);
      }
    }
    // Reversed, so the first field in the document is reported first.
    for (let i = children.length - 1; i >= 0; i--) pending.push(children[i]);
  }
  return null;
}

/**
 * A top-level key every object inherits (`constructor`, `toString`, `__proto__` …) or `prototype`:
 * Nest and class-transformer drop these silently, so they are refused here as the unknown fields
 * they are. No DTO declares one, nor nests another (a string map's keys are data, and nested).
 */
function inheritedKeyOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return Object.keys(value).find((key) => key in Object.prototype || key === 'prototype');
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
      const unstorable = unstorableText(value);
      if (unstorable) throw new RequestValidationError([unstorable]);
      const inherited = metadata.metatype && inheritedKeyOf(value);
      if (inherited) {
        throw new RequestValidationError([{ field: inherited, message: `property ${inherited} should not exist` }]);
      }
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
      for (const field of metadata.metatype ? stringMapFieldsOf(metadata.metatype) : []) {
        const map: unknown = (value as Record<string, unknown>)[field];
        if (typeof map === 'object' && map !== null) keptAsSent.add(map);
      }
    }
    return super.transform(value, metadata);
  }

  /**
   * Nest deletes every `__proto__`, `constructor` and `prototype` key of a value before
   * class-transformer reads it. A string map keeps its own: there they are labels, and string
   * values can set no prototype. What its values hold is stripped as anywhere else.
   */
  protected override stripProtoKeys(value: unknown): void {
    if (typeof value === 'object' && value !== null && keptAsSent.has(value)) {
      for (const item of Object.values(value)) this.stripProtoKeys(item);
    } else {
      super.stripProtoKeys(value);
    }
  }
}

const bodyPipe = new RequestValidationPipe();

/**
 * `value` read as a body of `Dto`, exactly as the pipe reads a route's body: the DTO, or a
 * RequestValidationError with every field's errors.
 */
export async function readBody<T extends object>(Dto: Type<T>, value: object): Promise<T> {
  return (await bodyPipe.transform(value, { type: 'body', metatype: Dto })) as T;
}
