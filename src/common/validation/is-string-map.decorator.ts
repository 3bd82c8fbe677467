import { Transform, Type } from 'class-transformer';
import { ValidationOptions, registerDecorator } from 'class-validator';
import { hasAtMostCharacters } from './max-characters.decorator';

export interface StringMapLimits {
  maxKeys: number;
  maxKeyLength: number;
  maxValueLength: number;
}

/** The fields each DTO class declares with `IsStringMap`. */
const STRING_MAP_FIELDS = new WeakMap<object, string[]>();

/** The fields of `Dto` (its own and its base classes') that are string maps. */
export function stringMapFieldsOf(Dto: object): string[] {
  const fields: string[] = [];
  for (let type: object | null = Dto; type !== null; type = Object.getPrototypeOf(type) as object | null) {
    fields.push(...(STRING_MAP_FIELDS.get(type) ?? []));
  }
  return fields;
}

const isPlainObject = (value: unknown): value is object =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * A flat JSON object of string values, within the given limits, with any keys: `constructor`,
 * `toString` or `__proto__` are labels like any other. It is taken as sent, its keys copied as
 * data (a string value set as a prototype is ignored, so none can reach one); the validation pipe
 * leaves its keys alone too (see `RequestValidationPipe.stripProtoKeys`).
 */
export function IsStringMap(limits: StringMapLimits, options?: ValidationOptions) {
  return (target: object, propertyName: string) => {
    STRING_MAP_FIELDS.set(target.constructor, [...(STRING_MAP_FIELDS.get(target.constructor) ?? []), propertyName]);
    // Else class-transformer takes a `constructor` key for the class of the map (and fails on a
    // string); what it builds is replaced below anyway.
    Type(() => Object)(target, propertyName);
    // class-transformer leaves out `__proto__`, `constructor` and keys that name a method of
    // Object.prototype (`toString`, `valueOf` …): the map is copied from the body instead.
    Transform(({ obj, key }: { obj: Record<string, unknown>; key: string }) => {
      const sent = obj[key];
      return isPlainObject(sent) ? Object.fromEntries(Object.entries(sent)) : sent;
    })(target, propertyName);
    registerDecorator({
      name: 'isStringMap',
      target: target.constructor,
      propertyName,
      options: {
        message: `$property must be an object of at most ${limits.maxKeys} string values, keys of 1–${limits.maxKeyLength} characters, values of at most ${limits.maxValueLength}`,
        ...options,
      },
      validator: {
        validate(value: unknown): boolean {
          if (!isPlainObject(value)) return false;
          const entries = Object.entries(value);
          return (
            entries.length <= limits.maxKeys &&
            entries.every(
              ([key, item]) =>
                key.length >= 1 &&
                hasAtMostCharacters(key, limits.maxKeyLength) &&
                typeof item === 'string' &&
                hasAtMostCharacters(item, limits.maxValueLength),
            )
          );
        },
      },
    });
  };
}
