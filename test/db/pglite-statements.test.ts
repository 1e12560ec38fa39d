import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PGlite, types, type Transaction } from '@electric-sql/pglite';
import { PgliteStatements } from '../../src/db/pglite-statements.ts';

// The embedded database's statements, prepared once and run in one call each, must answer exactly
// as PGlite's own query() does: same rows, same types, same errors, same waiting for a transaction.
describe('embedded statements: prepared once, one call each', () => {
  let client: PGlite;
  let statements: PgliteStatements;

  before(async () => {
    client = new PGlite();
    statements = new PgliteStatements(client, { limit: 3 });
    await client.exec(`CREATE TABLE t (id int8 PRIMARY KEY, name text, at timestamptz, doc jsonb, tags text[], flag boolean, n numeric)`);
  });
  after(async () => {
    await client.close();
  });

  const insert = 'INSERT INTO t (id, name, at, doc, tags, flag, n) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id';
  const at = new Date('2026-12-05T10:11:12.345Z');

  test('rows, fields and counts are those of PGlite\'s query(), in object and array mode, with its serializers and parsers', async () => {
    const inserted = await statements.query<{ id: number }>(insert, [1, 'one', at, { a: [1, 'x'] }, ['p', 'q r'], true, '12.50']);
    assert.deepEqual(inserted.rows, [{ id: 1 }]);
    assert.equal(inserted.affectedRows, 1);
    await statements.query(insert, [2, null, null, null, null, false, null]);

    const select = 'SELECT * FROM t WHERE id >= $1 ORDER BY id';
    const ours = await statements.query(select, [1]);
    const theirs = await client.query(select, [1]);
    assert.deepEqual(ours.rows, theirs.rows);
    assert.deepEqual(ours.fields, theirs.fields);
    assert.deepEqual(ours.rows[0], { id: 1, name: 'one', at, doc: { a: [1, 'x'] }, tags: ['p', 'q r'], flag: true, n: '12.50' });

    const options = { rowMode: 'array' as const, parsers: { [types.TIMESTAMPTZ]: (value: string) => value } };
    const asArrays = await statements.query(select, [2], options);
    assert.deepEqual(asArrays.rows, (await client.query(select, [2], options)).rows);
    assert.deepEqual(asArrays.rows, [[2, null, null, null, null, false, null]]);

    const updated = await statements.query('UPDATE t SET name = $1 WHERE id IN (1, 2)', ['both']);
    assert.equal(updated.affectedRows, 2);
    assert.deepEqual(updated.rows, []);
  });

  test('an error is PostgreSQL\'s, with its code and constraint, and leaves the database usable', async () => {
    await assert.rejects(statements.query(insert, [1, 'again', at, null, null, true, null]), (error: { code?: string; constraint?: string }) => {
      assert.equal(error.code, '23505');
      assert.equal(error.constraint, 't_pkey');
      return true;
    });
    await assert.rejects(statements.query('SELECT no_such_column FROM t', []), (error: { code?: string }) => error.code === '42703');
    const { rows } = await statements.query<{ n: number }>('SELECT count(*)::int AS n FROM t', []);
    assert.deepEqual(rows, [{ n: 2 }]);
  });

  test('a statement whose table changed is described again: the new column is in its rows', async () => {
    const select = 'SELECT * FROM t WHERE id = $1';
    assert.equal('extra' in (await statements.query<Record<string, unknown>>(select, [1])).rows[0]!, false);
    await client.exec(`ALTER TABLE t ADD COLUMN extra text DEFAULT 'x'`);
    const { rows } = await statements.query<{ extra: string }>(select, [1]);
    assert.equal(rows[0]!.extra, 'x');
  });

  test('beyond its limit the least recently used statement is closed in the database, and described again when used', async () => {
    for (let i = 0; i < 10; i++) assert.deepEqual((await statements.query<{ v: number }>(`SELECT ${i} + $1::int AS v`, [1])).rows, [{ v: i + 1 }]);
    const open = await statements.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'namaskah_%'`, []);
    assert.deepEqual(open.rows, [{ n: 3 }]);
    assert.deepEqual((await statements.query<{ v: number }>('SELECT 0 + $1::int AS v', [5])).rows, [{ v: 5 }]);
  });

  test('a query outside waits for an open transaction to end, and sees what it committed', async () => {
    let outside: Promise<number> | undefined;
    let settledInside = false;
    let txDone = false;
    await statements.transaction(async (tx) => {
      await tx.query(insert, [3, 'three', at, null, null, true, null]);
      assert.equal((await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [])).rows[0]!.n, 3);
      outside = statements.query<{ n: number }>('SELECT count(*)::int AS n FROM t', []).then((r) => {
        settledInside = !txDone;
        return r.rows[0]!.n;
      });
      // Many turns of the event loop: the query outside must still be waiting.
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    });
    txDone = true;
    assert.equal(await outside, 3);
    assert.equal(settledInside, false);
  });

  test('a transaction rolled back by an error leaves nothing, and its closed handle refuses queries', async () => {
    let handle: Transaction | undefined;
    await assert.rejects(
      statements.transaction(async (tx) => {
        handle = tx;
        await tx.query(insert, [4, 'four', at, null, null, true, null]);
        await tx.query(insert, [4, 'four again', at, null, null, true, null]);
      }),
      (error: { code?: string }) => error.code === '23505',
    );
    assert.deepEqual((await statements.query<{ n: number }>('SELECT count(*)::int AS n FROM t WHERE id = 4', [])).rows, [{ n: 0 }]);
    assert.throws(() => handle!.query('SELECT 1', []), /closed/);
  });
});
