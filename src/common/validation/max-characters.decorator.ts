import { ValidateBy, ValidationOptions } from 'class-validator';

/**
 * Whether `text` has at most `max` characters, as every length limit of the API counts them:
 * Unicode code points, as JSON Schema's `maxLength` does. An emoji of two UTF-16 units is one
 * character, and a variation selector (U+FE0F) is one more, so no text is longer than its count.
 */
export function hasAtMostCharacters(text: string, max: number): boolean {
  // A code point is one or two UTF-16 units: a text of at most `max` units is short enough.
  if (text.length <= max) return true;
  let count = 0;
  for (const _codePoint of text) if (++count > max) return false;
  return true;
}

/** A string of at most `max` characters (see `hasAtMostCharacters`). */
export const MaxCharacters = (max: number, options?: ValidationOptions) =>
  ValidateBy(
    {
      name: 'maxCharacters',
      constraints: [max],
      validator: {
        validate: (value: unknown) => typeof value === 'string' && hasAtMostCharacters(value, max),
        defaultMessage: () => `$property must be shorter than or equal to ${max} characters`,
      },
    },
    options,
  );
