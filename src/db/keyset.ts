import { z } from 'zod';

/**
 * Keyset pagination, the one way every list pages: newest first by (created_at, id), and a page's
 * cursor is the key of its last row, base64url("<ISO timestamp>|<uuid>"). Clients treat cursors as
 * opaque; the Cursor schema refuses anything this API did not give out, so a forged or damaged
 * cursor is a validation error (400) naming `cursor`, never a failed query.
 */
export interface Keyset {
  at: Date;
  id: string;
}

// Exactly what Date.prototype.toISOString writes for years 0001-9999: inside PostgreSQL's
// timestamptz range (4713 BC to 294276 AD), and written back by the drivers unchanged.
const TIMESTAMP = /^(?!0000)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function encodeCursor(key: Keyset): string {
  return Buffer.from(`${key.at.toISOString()}|${key.id}`).toString('base64url');
}

/** The key a cursor stands for, or undefined when it is not a cursor this API gave out. */
export function decodeCursor(cursor: string): Keyset | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  const parts = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const [iso, id] = parts;
  if (parts.length !== 2 || !iso || !id || !TIMESTAMP.test(iso) || !UUID.test(id)) return undefined;
  const at = new Date(iso);
  // A well-formed string can still name no instant (2026-02-30): it must survive the round trip.
  if (Number.isNaN(at.getTime()) || at.toISOString() !== iso) return undefined;
  return { at, id };
}

/** The `cursor` query parameter of every list route: decoded and validated, or a 400. */
export const Cursor = z
  .string()
  .max(300)
  .transform((text, context) => {
    const key = decodeCursor(text);
    if (!key) context.addIssue({ code: 'custom', message: 'not a cursor this API gave out (use next_cursor of the previous page)' });
    return key ?? z.NEVER;
  })
  .describe('opaque: the next_cursor of the previous page');

/**
 * One page from rows fetched with LIMIT limit + 1 (newest first): the first `limit` rows, and the
 * cursor of the next page when there is one.
 */
export function pageOf<T>(found: T[], limit: number, keyOf: (row: T) => Keyset): { items: T[]; nextCursor: string | null } {
  const items = found.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: found.length > limit && last ? encodeCursor(keyOf(last)) : null };
}
