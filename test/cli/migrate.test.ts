import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { loadConfig } from '../../src/config.ts';
import { runCli } from '../support/cli.ts';
import { loadMigrations } from '../../src/db/migrate.ts';
import { openConfiguredDatabase } from '../../src/server.ts';

const cli = runCli;

describe('namaskah migrate --status, and a schema newer than the code', () => {
  const dir = mkdtempSync(join(tmpdir(), 'namaskah-migrate-'));
  const env = { DATA_DIR: dir };
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function recordNewer(version: string, breaks: boolean | null): Promise<void> {
    const opened = await openConfiguredDatabase(loadConfig(env), new Date());
    try {
      await opened.database.db.execute(sql`INSERT INTO schema_migrations (version, breaks_previous_release) VALUES (${version}, ${breaks})`);
    } finally {
      await opened.close();
    }
  }

  test('lists every migration as pending on a new data directory, and applies none', async () => {
    const versions = loadMigrations().map((m) => m.version);
    const status = await cli(['migrate', '--status', '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(JSON.parse(status.stdout), { applied: [], pending: versions, newer: [], runnable: true });
    const again = await cli(['migrate', '--status', '--json'], env);
    assert.deepEqual(JSON.parse(again.stdout).pending, versions, 'the status applied nothing');
  });

  test('after migrate: all applied, with their time; a table for people', async () => {
    const migrated = await cli(['migrate'], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    const status = await cli(['migrate', '--status'], env);
    assert.equal(status.code, 0, status.stderr);
    const count = loadMigrations().length;
    assert.match(status.stdout, new RegExp(`: ${count} applied, 0 pending, 0 newer than this release`));
    assert.match(status.stdout, /VERSION\s+STATE\s+APPLIED AT\n0001_foundation\s+applied\s+\d{4}-\d\d-\d\dT/);
  });

  test('an additive migration of a newer release: listed, and this release still starts', async () => {
    await recordNewer('9998_added_by_newer_release', false);
    const status = await cli(['migrate', '--status'], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /9998_added_by_newer_release\s+newer \(additive: this release still runs\)/);
    const migrated = await cli(['migrate'], env);
    assert.equal(migrated.code, 0, migrated.stderr);
  });

  test('a newer migration that breaks this release: status exits 1, migrate and serve refuse with what to do', async () => {
    await recordNewer('9999_dropped_by_newer_release', true);
    const status = await cli(['migrate', '--status', '--json'], env);
    assert.equal(status.code, 1);
    assert.equal(JSON.parse(status.stdout).runnable, false);
    assert.match(status.stderr, /error: the database schema is newer than this release: migration 9999_dropped_by_newer_release/);

    for (const args of [['migrate'], ['serve']]) {
      const refused = await cli(args, { ...env, PORT: '0' });
      assert.equal(refused.code, 1, args.join(' '));
      assert.match(refused.stderr, /error: the database schema is newer than this release: migration 9999_dropped_by_newer_release \(applied by a newer release\) changed what this release relies on\. Run the newer release, or restore the backup/);
    }
  });

  test('misuse is explained', async () => {
    const misuse = await cli(['migrate', '--json'], env);
    assert.equal(misuse.code, 2);
    assert.match(misuse.stderr, /--json goes with --status/);
  });
});
