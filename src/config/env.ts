import { Inject } from '@nestjs/common';
import { registerAs } from '@nestjs/config';
import { plainToInstance } from 'class-transformer';
import { ValidationError, validateSync } from 'class-validator';

/** A configuration problem, phrased as one line that names the variable. */
export class InvalidConfigError extends Error {
  override readonly name = 'InvalidConfigError';
}

/** The environment as the process has it: every variable may be missing. */
export type Environment = Record<string, string | undefined>;

export const emptyToUndefined = ({ value }: { value: unknown }) =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;

export const toInteger = ({ value }: { value: unknown }) => {
  if (typeof value !== 'string') return value;
  if (value.trim() === '') return undefined;
  return /^-?\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
};

/** Node's timers wait at most 2^31 - 1 ms: a longer delay fires after 1 ms instead. */
export const LONGEST_TIMER_MS = 2 ** 31 - 1;

export const refuse = (variable: string, value: string, reason: string) =>
  new InvalidConfigError(`Invalid configuration: ${variable}=${JSON.stringify(value)} ${reason}`);

/**
 * A valid setting the service still cannot start with (a database it cannot reach, a port in use),
 * reported like an invalid one. `value` must show no secret.
 */
export const cannotStartWith = (variable: string, value: string, reason: string) =>
  new InvalidConfigError(`Cannot start: ${variable}=${JSON.stringify(value)} ${reason}`);

/** A URL with any password in it replaced, for messages and logs. */
export function withoutPassword(url: string): string {
  // To the last `@`: a password that is not percent-encoded may hold `/`, `#` or `?`, and so may a
  // user name `?` or `#`. A URL without a password may lose more than one: never less.
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):.*@/i, '$1:***@');
}

function describeErrors(errors: ValidationError[], env: Environment): string {
  return errors
    .map((error) => {
      const reasons = Object.values(error.constraints ?? {}).join(', ');
      const value = env[error.property];
      return `${error.property}=${JSON.stringify(value === undefined ? value : withoutPassword(value))} is invalid: ${reasons}`;
    })
    .join('; ');
}

/**
 * The variables a slice reads, validated by the class-validator rules of `Variables` (a class
 * with one optional property per variable); throws {@link InvalidConfigError} naming them.
 */
export function readVariables<T extends object>(Variables: new () => T, env: Environment): T {
  const vars = plainToInstance(Variables, { ...env });
  // One reason a variable: class-validator runs a property's decorators bottom-up, so the type
  // check is written last (nearest the property) and stops the range checks above it.
  const errors = validateSync(vars, { skipMissingProperties: false, stopAtFirstError: true });
  if (errors.length > 0) throw new InvalidConfigError(`Invalid configuration: ${describeErrors(errors, env)}`);
  return vars;
}

/**
 * A configuration slice: its settings parsed from the environment by `parse`, as a
 * `@nestjs/config` namespace (`KEY`, parsed when the application is created) with a decorator
 * that injects them where they are used: `constructor(@httpConfig.inject() http: HttpConfig)`.
 */
export function configSlice<T extends object>(name: string, parse: (env: Environment) => T) {
  const factory = registerAs(name, (): T => parse(process.env));
  return Object.assign(factory, { parse, inject: () => Inject(factory.KEY) });
}
