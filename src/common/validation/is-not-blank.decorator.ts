import { ValidateBy, ValidationOptions } from 'class-validator';

/** A string with something other than white space in it. */
export const IsNotBlank = (options?: ValidationOptions) =>
  ValidateBy(
    {
      name: 'isNotBlank',
      validator: {
        validate: (value: unknown) => typeof value === 'string' && value.trim().length > 0,
        defaultMessage: () => '$property must not be blank',
      },
    },
    options,
  );
