import { ApiSchema, ApiSchemaOptions } from '@nestjs/swagger';

/**
 * `additionalProperties: false` in the class's OpenAPI schema, for the objects of a request body:
 * the service refuses any field they do not declare (422). Nest copies the schema options it does
 * not type into the schema as they are.
 */
export const ApiClosedSchema = (description?: string): ClassDecorator =>
  ApiSchema({ ...(description === undefined ? {} : { description }), additionalProperties: false } as ApiSchemaOptions);
