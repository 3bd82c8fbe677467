import { ValidateBy, ValidationOptions } from 'class-validator';

/** A field that must be sent: its absence says so, rather than that nothing is not a string. */
export const IsRequired = (options?: ValidationOptions) =>
  ValidateBy(
    {
      name: 'isRequired',
      validator: {
        validate: (value: unknown) => value !== undefined,
        defaultMessage: () => '$property is required',
      },
    },
    options,
  );
