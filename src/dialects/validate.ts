/** Validation of client request bodies: the first problem becomes a 400 ValidationError naming the field. */
import type { z } from 'zod';
import { formatPath } from '../config/errors.ts';
import { validationError } from '../core/errors.ts';

export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw validationError('request body must be a JSON object', '(body)');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = formatPath(issue.path);
  let message = issue.message.replace(/^Invalid (input|option): /, '');
  if (issue.code === 'invalid_union' || issue.code === 'invalid_value') {
    message = issue.code === 'invalid_value' ? `expected one of ${issue.values.map(String).join(', ')}` : 'has an unsupported shape';
  }
  throw validationError(`${field}: ${message}`, field);
}
