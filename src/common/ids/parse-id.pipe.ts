import { Injectable, PipeTransform } from '@nestjs/common';
import { isUUID } from 'class-validator';

/**
 * Path ids are UUIDs. Anything else names nothing, so it gets the same error as an unknown id
 * (the contract's 404), never a 400 or 500.
 */
@Injectable()
export class ParseIdPipe implements PipeTransform<string, string> {
  constructor(private readonly notFound: (id: string) => Error) {}

  transform(value: string): string {
    if (!isUUID(value)) throw this.notFound(value);
    return value.toLowerCase();
  }
}
