import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cursor, decodeCursor, encodeCursor, pageOf } from '../../src/db/keyset.ts';

const cursorOf = (text: string) => Buffer.from(text).toString('base64url');
const ID = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';

describe('keyset cursors', () => {
  test('a cursor round-trips the key of the row it was made from', () => {
    const key = { at: new Date('2026-03-01T12:00:00.123Z'), id: ID };
    assert.deepEqual(decodeCursor(encodeCursor(key)), key);
    assert.deepEqual(Cursor.parse(encodeCursor(key)), key);
  });

  test('anything this API did not give out is refused', () => {
    const refused = [
      'bogus',
      '',
      'not base64!',
      cursorOf(`2026-03-01T12:00:00.000Z|${ID}|extra`),
      cursorOf('2026-03-01T12:00:00.000Z|'),
      cursorOf(`|${ID}`),
      // The id part must be a UUID: a query on a uuid column would otherwise fail.
      cursorOf('2026-03-01T12:00:00.000Z|not-a-uuid'),
      cursorOf("2026-03-01T12:00:00.000Z|' OR 1=1 --"),
      cursorOf(`2026-03-01T12:00:00.000Z|${ID.toUpperCase()}x`),
      // The date must be an instant inside PostgreSQL's timestamptz range, written as we write it.
      cursorOf(`+275760-09-13T00:00:00.000Z|${ID}`),
      cursorOf(`-271821-04-20T00:00:00.000Z|${ID}`),
      cursorOf(`0000-01-01T00:00:00.000Z|${ID}`),
      cursorOf(`10000-01-01T00:00:00.000Z|${ID}`),
      cursorOf(`2026-02-30T00:00:00.000Z|${ID}`),
      cursorOf(`2026-03-01|${ID}`),
      cursorOf(`Sun, 01 Mar 2026 12:00:00 GMT|${ID}`),
      'x'.repeat(301),
    ];
    for (const text of refused) {
      assert.equal(decodeCursor(text), undefined, text);
      assert.equal(Cursor.safeParse(text).success, false, text);
    }
  });

  test('a page is the first `limit` rows, with the cursor of its last row when more follow', () => {
    const rows = [1, 2, 3].map((n) => ({ n, at: new Date(Date.UTC(2026, 0, n)), id: ID.replace(/1$/, String(n)) }));
    const key = (r: (typeof rows)[number]) => ({ at: r.at, id: r.id });
    const first = pageOf(rows, 2, key);
    assert.deepEqual(first.items.map((r) => r.n), [1, 2]);
    assert.deepEqual(decodeCursor(first.nextCursor!), key(rows[1]!));
    assert.deepEqual(pageOf(rows, 3, key), { items: rows, nextCursor: null });
    assert.deepEqual(pageOf([], 3, key), { items: [], nextCursor: null });
  });
});
