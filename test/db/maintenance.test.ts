import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { loadConfig } from '../../src/config.ts';
import { firstRow } from '../../src/db/database.ts';
import { diagnose } from '../../src/ops/diagnose.ts';
import { ManualClock } from '../support/clock.ts';
import { AUTOVACUUM_RULES, maintainTables, tableActivity, upkeepDue, upkeepStatement, type TableActivity } from '../../src/db/maintenance.ts';
import { engines, freshDatabase, type TestDatabase } from '../support/db.ts';

const quiet: TableActivity = { table: 't', rows: 10_000, deadRows: 0, insertedSinceVacuum: 0, modifiedSinceAnalyze: 0, xidAge: 1000 };

describe('embedded upkeep: autovacuum\'s rules', () => {
  test('a table below every threshold is left alone', () => {
    // 10,000 rows: vacuum after 50 + 2,000 dead, 1,000 + 2,000 inserted; analyze after 50 + 1,000 changed.
    assert.deepEqual(upkeepDue([{ ...quiet, deadRows: 2050, insertedSinceVacuum: 3000, modifiedSinceAnalyze: 1050 }]), []);
  });

  test('dead rows past 50 + 20 % of the table call for a vacuum', () => {
    assert.deepEqual(upkeepDue([{ ...quiet, deadRows: 2051 }]), [{ table: 't', vacuum: true, analyze: false, why: '2051 dead rows' }]);
  });

  test('rows inserted past 1,000 + 20 % call for a vacuum: an insert-only table gets its rows frozen too', () => {
    assert.deepEqual(upkeepDue([{ ...quiet, insertedSinceVacuum: 3001 }]).map((u) => [u.vacuum, u.analyze]), [[true, false]]);
  });

  test('a table whose oldest unfrozen row is older than the freeze age is vacuumed however quiet it is', () => {
    const [upkeep] = upkeepDue([{ ...quiet, xidAge: AUTOVACUUM_RULES.freezeMaxAge + 1 }]);
    assert.equal(upkeep?.vacuum, true);
    assert.match(upkeep!.why, /transaction id age/);
  });

  test('rows changed past 50 + 10 % call for an analyze; a never-analyzed table counts as empty', () => {
    assert.deepEqual(upkeepDue([{ ...quiet, modifiedSinceAnalyze: 1051 }]).map((u) => [u.vacuum, u.analyze]), [[false, true]]);
    assert.deepEqual(upkeepDue([{ ...quiet, rows: -1, modifiedSinceAnalyze: 51 }]).map((u) => [u.vacuum, u.analyze]), [[false, true]]);
    assert.deepEqual(upkeepDue([{ ...quiet, rows: -1, modifiedSinceAnalyze: 50 }]), []);
  });

  test('each upkeep is one statement, the table name quoted', () => {
    assert.equal(upkeepStatement({ table: 'verifications', vacuum: true, analyze: true, why: '' }), 'VACUUM (ANALYZE) "verifications"');
    assert.equal(upkeepStatement({ table: 'a"b', vacuum: true, analyze: false, why: '' }), 'VACUUM "a""b"');
    assert.equal(upkeepStatement({ table: 't', vacuum: false, analyze: true, why: '' }), 'ANALYZE "t"');
  });
});

for (const engine of engines) {
  describe(`embedded upkeep on ${engine}`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await freshDatabase(engine);
    });
    after(async () => {
      await t.dispose();
    });

    const probe = async () =>
      firstRow<{ reltuples: number; relallvisible: number }>(
        t.database.db,
        sql`SELECT reltuples::float8 AS reltuples, relallvisible::int AS relallvisible FROM pg_class WHERE relname = 'upkeep_probe'`,
      );

    /** The statistics arrive when the writing session flushes them; wait for them (bounded), never for a fixed time. */
    const activityOf = async (table: string, seen: (a: TableActivity) => boolean) => {
      for (let i = 0; i < 100; i++) {
        const found = (await tableActivity(t.database)).find((a) => a.table === table);
        if (found && seen(found)) return found;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.fail(`the statistics never showed the writes to ${table}`);
    };

    test('dead rows left by updates are vacuumed and the table analyzed; a second pass finds nothing to do', async () => {
      await t.database.transaction(async (tx) => {
        await tx.execute(sql`CREATE TABLE upkeep_probe (id int PRIMARY KEY, n int NOT NULL)`);
        await tx.execute(sql`INSERT INTO upkeep_probe SELECT g, 0 FROM generate_series(1, 2000) g`);
        await tx.execute(sql`UPDATE upkeep_probe SET n = n + 1 WHERE id <= 1000`);
        await tx.execute(sql`SELECT pg_stat_force_next_flush()`);
      });
      const activity = await activityOf('upkeep_probe', (a) => a.deadRows === 1000);
      assert.equal(activity.rows, -1, 'never analyzed before');
      assert.equal((await probe())?.relallvisible, 0, 'no page known all-visible before a vacuum');

      const done = await maintainTables(t.database);
      const mine = done.find((u) => u.table === 'upkeep_probe');
      assert.deepEqual(mine && [mine.vacuum, mine.analyze], [true, true], JSON.stringify(done));

      const afterwards = await probe();
      assert.equal(afterwards?.reltuples, 2000, 'the planner now knows the table has 2,000 rows');
      assert.ok((afterwards?.relallvisible ?? 0) > 0, 'the vacuum marked its pages all-visible');
      await activityOf('upkeep_probe', (a) => a.deadRows === 0 && a.modifiedSinceAnalyze === 0);
      assert.equal((await maintainTables(t.database)).find((u) => u.table === 'upkeep_probe'), undefined);
    });

    test('diagnose warns when the PostgreSQL server runs without autovacuum; the embedded database has the engine instead', async () => {
      const report = await diagnose({ database: t.database, clock: new ManualClock(Date.now()), config: loadConfig({ LOG_LEVEL: 'silent' }) });
      const warned = report.warnings.some((w) => w.startsWith('autovacuum is off'));
      if (engine === 'pglite') {
        assert.equal(warned, false);
        return;
      }
      const setting = await firstRow<{ autovacuum: string }>(t.database.db, sql`SELECT current_setting('autovacuum') AS autovacuum`);
      assert.equal(warned, setting?.autovacuum === 'off', JSON.stringify(report.warnings));
    });
  });
}
