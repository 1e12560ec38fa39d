import { z } from 'zod';
import { IDEMPOTENCY_KEY_PATTERN } from '../accounts/policy.ts';

/**
 * Request shapes shared by several routes. Resources (what routes answer) are declared beside their
 * domain module (a resource.ts in the module's folder), so the domain builds exactly the type the API validates.
 */

/** Optional Idempotency-Key header; other headers pass through untouched. */
export const IdempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .regex(IDEMPOTENCY_KEY_PATTERN, 'must be 1-255 printable ASCII characters')
    .optional()
    .describe('makes the request safe to retry: a retry returns the first outcome'),
});

export const Security: { [scheme: string]: string[] }[] = [{ bearerAuth: [] }, { cookieAuth: [] }];
