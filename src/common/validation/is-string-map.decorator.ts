import { ValidationOptions, registerDecorator } from 'class-validator';

export interface StringMapLimits {
  maxKeys: number;
  maxKeyLength: number;
  maxValueLength: number;
}

/** A flat JSON object of string values, within the given limits. */
export function IsStringMap(limits: StringMapLimits, options?: ValidationOptions) {
  return (target: object, propertyName: string) =>
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
          if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
          const entries = Object.entries(value);
          return (
            entries.length <= limits.maxKeys &&
            entries.every(
              ([key, item]) =>
                key.length >= 1 &&
                key.length <= limits.maxKeyLength &&
                typeof item === 'string' &&
                item.length <= limits.maxValueLength,
            )
          );
        },
      },
    });
}
