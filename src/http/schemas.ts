import { z } from 'zod';
import { IDEMPOTENCY_KEY_PATTERN } from '../accounts/policy.ts';
import { Cursor } from '../db/keyset.ts';

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

/** The query fields every list route takes: the previous page's cursor and a bounded page size. */
export function pageQuery(limit: { max: number; default: number }) {
  return { cursor: Cursor.optional(), limit: z.coerce.number().int().min(1).max(limit.max).default(limit.default) };
}

/** What every list route answers: a page of items, newest first, and the cursor of the next page (null on the last). */
export function Page<Item extends z.ZodType>(item: Item) {
  return z.object({ items: z.array(item), next_cursor: z.string().nullable() });
}

export const Security: { [scheme: string]: string[] }[] = [{ bearerAuth: [] }, { cookieAuth: [] }];
