import { z } from 'zod';
import { IDEMPOTENCY_KEY_PATTERN, IDEMPOTENCY_KEY_RULE } from '../accounts/policy.ts';
import { Cursor } from '../db/keyset.ts';

/**
 * Request shapes shared by several routes. Resources (what routes answer) are declared beside their
 * domain module (a resource.ts in the module's folder), so the domain builds exactly the type the API validates.
 */

const IdempotencyKey = z
  .string()
  .regex(IDEMPOTENCY_KEY_PATTERN, `must be ${IDEMPOTENCY_KEY_RULE}`)
  .describe(
    `${IDEMPOTENCY_KEY_RULE}, chosen by the client and scoped to the caller: a retry with the same key and the same request ` +
      'returns the first outcome (Idempotent-Replayed: true); the same key with a different request is 422',
  );

/** The Idempotency-Key header, with the same rule on every route that takes one; other headers pass through untouched. */
export const IdempotencyHeaders = z.looseObject({ 'idempotency-key': IdempotencyKey.optional() });

/**
 * For routes that need the key: the document says required, while validation lets a missing key
 * through to the route, which refuses it with its own code (400 `idempotency_key_missing`).
 */
export const RequiredIdempotencyHeaders = IdempotencyHeaders.meta({ required: ['idempotency-key'] });

/** The query fields every list route takes: the previous page's cursor and a bounded page size. */
export function pageQuery(limit: { max: number; default: number }) {
  return { cursor: Cursor.optional(), limit: z.coerce.number().int().min(1).max(limit.max).default(limit.default) };
}

/** What every list route answers: a page of items, newest first, and the cursor of the next page (null on the last). */
export function Page<Item extends z.ZodType>(item: Item) {
  return z.object({ items: z.array(item), next_cursor: z.string().nullable() });
}

export const Security: { [scheme: string]: string[] }[] = [{ bearerAuth: [] }, { cookieAuth: [] }];

/** For public routes whose answer depends on who asks (operators see more; logout ends the session it is given). */
export const OptionalSecurity: { [scheme: string]: string[] }[] = [{}, ...Security];
