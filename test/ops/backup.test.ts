import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { creditUserWallet } from '../../src/accounts/admin.ts';
import { createUser } from '../../src/accounts/users.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';
import { diagnose } from '../../src/ops/diagnose.ts';
import { ProviderError } from '../../src/providers/provider.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';
import { openConfiguredDatabase } from '../../src/server.ts';
import { cancelVerification, expireVerification } from '../../src/verifications/flows.ts';
import { loadVerification, recordMessages, type LifecycleDeps } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { runCli, runNamaskah } from '../support/cli.ts';
import { ManualClock } from '../support/clock.ts';
import { dataSnapshot } from '../support/data-snapshot.ts';
import { testDatabaseUrl } from '../support/db.ts';
import { ScriptedProvider } from '../support/scripted-provider.ts';

/**
 * Backups that restore (docs/operations.md, "Backup and restore"): a database filled through the
 * real flows — top-ups, purchases in every state, an owed upstream cancel, a late SMS — is backed up
 * while its server runs, restored elsewhere, and must hold the same rows, wallets and invariants.
 */

const cli = runCli;

const message = (id: string, at: Date) => [{ providerMessageId: `${id}#1`, text: 'Your code is 424242', code: '424242', receivedAt: at }];

/** Customers, top-ups and one verification in every state and upstream settlement, through the lifecycle's own functions. */
async function fillThroughFlows(deps: LifecycleDeps, clock: ManualClock, provider: ScriptedProvider): Promise<void> {
  const { database, config } = deps;
  const customers: string[] = [];
  for (const name of ['asha', 'bilal', 'chen']) {
    const user = await createUser(
      database,
      { email: `${name}@example.test`, password: `pw-${randomBytes(12).toString('base64url')}`, role: 'customer' },
      { currency: config.CURRENCY, now: clock.now() },
    );
    await creditUserWallet(database, { actor: { kind: 'operator' }, userId: user.id, amountMinor: 2_000, reason: 'top-up', now: clock.now() });
    customers.push(user.id);
  }
  await creditUserWallet(database, { actor: { kind: 'operator' }, userId: customers[2]!, amountMinor: -150, reason: 'goodwill taken back', now: clock.now() });
  const buy = async (userId: string) => (await purchaseVerification(deps, { userId, idempotencyKey: randomUUID(), service: 'whatsapp' })).row;

  // First, one that reaches its deadline and gets a late SMS afterwards (the rest is bought after, so it is not yet due).
  const expiring = await buy(customers[0]!);
  clock.advance((config.VERIFICATION_TTL_SECONDS + 1) * 1000);
  const expired = await expireVerification(deps, (await loadVerification(database.db, expiring.id))!);
  assert.equal(expired?.state, 'expired');
  await recordMessages(deps, expiring.id, message(expiring.id, clock.now()), 'poller');

  for (const userId of customers) {
    const received = await buy(userId);
    await recordMessages(deps, received.id, message(received.id, clock.now()), 'poller');

    const cancelled = await buy(userId);
    assert.equal((await cancelVerification(deps, cancelled, 'customer')).kind, 'cancelled');

    await buy(userId); // stays waiting

    provider.onBuy = async () => {
      throw new ProviderError('definite', 'no_numbers', 'no numbers left');
    };
    await buy(userId).catch(() => {}); // failed, released
    provider.onBuy = async () => {
      throw new ProviderError('ambiguous', 'timeout', 'no answer in time');
    };
    await buy(userId); // pending: outcome unknown
    provider.resetBehaviour();

    const owed = await buy(userId);
    provider.onCancel = async () => {
      throw new ProviderError('ambiguous', 'connection_lost', 'connection reset');
    };
    const owedCancel = await cancelVerification(deps, owed, 'customer');
    assert.equal(owedCancel.kind === 'cancelled' && owedCancel.row.upstreamStatus, 'cancel_owed');
    provider.resetBehaviour();
  }
}

function checksOf(report: Awaited<ReturnType<typeof diagnose>>) {
  return report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
}

describe('backup and restore of the embedded database, while the server runs', () => {
  const clock = new ManualClock('2026-05-01T10:00:00Z');
  const provider = new ScriptedProvider();
  const scratch = mkdtempSync(join(tmpdir(), 'namaskah-backup-'));
  let app: TestApp;
  let env: Record<string, string>;

  before(async () => {
    app = await startTestApp({
      worker: false,
      clock,
      runtime: (ctx) => createVerificationRuntime(ctx, { provider }),
      env: { MAX_ACTIVE_VERIFICATIONS: '1000', PURCHASES_PER_MINUTE: '100000' },
    });
    env = { DATA_DIR: app.dataDir! };
    await fillThroughFlows(app.server.runtime.deps, clock, provider);
  });
  after(async () => {
    await app?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('the backup, taken by another process through the running server, restores to the same rows, wallets and invariants', async () => {
    const file = join(scratch, 'namaskah.backup');
    const before = await dataSnapshot(app.ctx.database.db);
    assert.ok(before.verifications.length >= 19, 'verifications in every state');
    const states = new Set((before.verifications as { state: string }[]).map((v) => v.state));
    assert.deepEqual([...states].sort(), ['cancelled', 'expired', 'failed', 'pending', 'received', 'waiting']);

    const backup = await runNamaskah(['backup', file], { LOG_LEVEL: 'silent', ...env });
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(backup.stdout, /backup of the embedded database written to .*namaskah\.backup \(\d+ bytes, from the server at http:\/\/127\.0\.0\.1:\d+\)/);
    assert.deepEqual(readdirSync(scratch), ['namaskah.backup'], 'no partial file is left behind');

    const restoredDir = join(scratch, 'restored');
    const restore = await cli(['restore', file], { DATA_DIR: restoredDir }, clock);
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stdout, /restored .* into .*restored\n/);
    assert.match(restore.stdout, /diagnose: all \d+ invariant checks pass/);

    const opened = await openConfiguredDatabase(loadConfig({ DATA_DIR: restoredDir }), clock.now());
    try {
      assert.deepEqual(await dataSnapshot(opened.database.db), before);
      const config = loadConfig({ LOG_LEVEL: 'silent' });
      const restoredReport = await diagnose({ database: opened.database, clock, config });
      const liveReport = await diagnose({ database: app.ctx.database, clock, config });
      assert.deepEqual(checksOf(restoredReport), []);
      assert.deepEqual(
        [restoredReport.checks, restoredReport.states, restoredReport.upstream_settlement_owed, restoredReport.late_sms],
        [liveReport.checks, liveReport.states, liveReport.upstream_settlement_owed, liveReport.late_sms],
      );
      assert.equal(restoredReport.upstream_settlement_owed.count, 3);
    } finally {
      await opened.close();
    }

    // `diagnose` on the restored directory, as an operator runs it after a restore.
    const diagnosed = await cli(['diagnose'], { DATA_DIR: restoredDir }, clock);
    assert.equal(diagnosed.code, 0, diagnosed.stderr);
    // Restored later than its verifications' deadlines: money intact, the expiries are due.
    const lateDir = join(scratch, 'restored-late');
    const late = await cli(['restore', file], { DATA_DIR: lateDir }, new ManualClock('2026-05-02T10:00:00Z'));
    assert.equal(late.code, 0, late.stderr);
    assert.match(late.stdout, /diagnose: the money invariants pass; no_hold_past_deadline \(\d+\)[^\n]*the engine releases them when the server starts/);
  });

  test('a backup taken while purchases run holds whole transactions only: the restore passes every invariant', async () => {
    const file = join(scratch, 'during-writes.backup');
    const deps = app.server.runtime.deps;
    const user = await createUser(
      deps.database,
      { email: 'busy@example.test', password: `pw-${randomBytes(12).toString('base64url')}`, role: 'customer' },
      { currency: 'USD', now: clock.now() },
    );
    await creditUserWallet(deps.database, { actor: { kind: 'operator' }, userId: user.id, amountMinor: 100_000, reason: 'top-up', now: clock.now() });
    let stop = false;
    const writer = (async () => {
      let n = 0;
      while (!stop && n < 200) {
        const row = (await purchaseVerification(deps, { userId: user.id, idempotencyKey: randomUUID(), service: 'whatsapp' })).row;
        if (n % 2 === 0) await cancelVerification(deps, row, 'customer');
        else await recordMessages(deps, row.id, message(row.id, clock.now()), 'poller');
        n++;
      }
      return n;
    })();
    const backup = await runNamaskah(['backup', file], { LOG_LEVEL: 'silent', ...env });
    stop = true;
    const written = await writer;
    assert.equal(backup.code, 0, backup.stderr);
    assert.ok(written > 0);

    const restoredDir = join(scratch, 'restored-during-writes');
    const restore = await cli(['restore', file], { DATA_DIR: restoredDir }, clock);
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stdout, /diagnose: all \d+ invariant checks pass/);
  });

  test('misuse is refused and explained, and changes nothing', async () => {
    const file = join(scratch, 'namaskah.backup');
    const existing = await cli(['backup', file], env);
    assert.equal(existing.code, 2);
    assert.match(existing.stderr, /already exists; a backup never overwrites a file/);

    // Another process, as an operator would run it (in this process the server's own lock would not count).
    const overServer = await runNamaskah(['restore', file], { LOG_LEVEL: 'silent', ...env });
    assert.equal(overServer.code, 1);
    assert.match(overServer.stderr, /is in use by process \d+ \(namaskah serving at/);

    const restoredDir = join(scratch, 'restored');
    const overData = await cli(['restore', file], { DATA_DIR: restoredDir });
    assert.equal(overData.code, 1);
    assert.match(overData.stderr, /already holds a database; a restore never overwrites one/);

    const junk = join(scratch, 'junk.backup');
    writeFileSync(junk, 'not a backup');
    const emptyDir = join(scratch, 'empty');
    const notBackup = await cli(['restore', junk], { DATA_DIR: emptyDir });
    assert.equal(notBackup.code, 1);
    assert.match(notBackup.stderr, /is not a namaskah embedded backup/);
    const left = join(emptyDir, 'pglite');
    assert.ok(!existsSync(left) || readdirSync(left).length === 0, 'no database is left behind');

    const missing = await cli(['restore', join(scratch, 'nope.backup')], { DATA_DIR: join(scratch, 'other') });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*nope\.backup: ENOENT/);

    const noDatabase = await cli(['backup', join(scratch, 'x.backup')], { DATA_DIR: join(scratch, 'nothing-here') });
    assert.equal(noDatabase.code, 1);
    assert.match(noDatabase.stderr, /there is no embedded database in .*nothing-here/);
    assert.ok(!existsSync(join(scratch, 'nothing-here', 'pglite')), 'no database was created by asking');

    const postgres = await cli(['backup', join(scratch, 'pg.backup')], { DATABASE_URL: 'postgres://u:secret@127.0.0.1:1/x' });
    assert.equal(postgres.code, 2);
    assert.match(postgres.stderr, /runs on PostgreSQL \(DATABASE_URL\): back it up with `pg_dump --format=custom` and restore with `pg_restore`/);
    assert.doesNotMatch(postgres.stderr, /secret/);

    const missingArgument = await cli(['backup'], env);
    assert.equal(missingArgument.code, 2);
    assert.match(missingArgument.stderr, /missing required argument 'file'/);
  });

  test('the backup route is for the local operator token only', async () => {
    const { login } = await import('../support/http.ts');
    const session = await login(app.url, app.admin.email, app.admin.password);
    const response = await fetch(new URL('/v1/admin/backup', app.url), { headers: { authorization: `Bearer ${session.token}` } });
    assert.equal(response.status, 403);
    assert.match(((await response.json()) as { detail: string }).detail, /namaskah backup/);
  });
});

describe('backup and restore on PostgreSQL: pg_dump and pg_restore', { skip: !testDatabaseUrl && 'needs TEST_DATABASE_URL' }, () => {
  test('a pg_dump of a database filled through the flows restores with pg_restore to the same rows, wallets and invariants', async () => {
    const clock = new ManualClock('2026-05-01T10:00:00Z');
    const provider = new ScriptedProvider();
    const app = await startTestApp({
      engine: 'postgres',
      worker: false,
      clock,
      runtime: (ctx) => createVerificationRuntime(ctx, { provider }),
      env: { MAX_ACTIVE_VERIFICATIONS: '1000', PURCHASES_PER_MINUTE: '100000' },
    });
    const scratch = mkdtempSync(join(tmpdir(), 'namaskah-pgdump-'));
    const restoredName = `namaskah_restore_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: testDatabaseUrl });
    await admin.connect();
    try {
      await fillThroughFlows(app.server.runtime.deps, clock, provider);
      const before = await dataSnapshot(app.ctx.database.db);
      const file = join(scratch, 'namaskah.dump');
      // The commands of docs/operations.md, "Backup and restore".
      execFileSync('pg_dump', ['--format=custom', '--no-owner', `--file=${file}`, app.databaseUrl!]);
      await admin.query(`CREATE DATABASE ${restoredName}`);
      const restoredUrl = new URL(testDatabaseUrl!);
      restoredUrl.pathname = `/${restoredName}`;
      execFileSync('pg_restore', ['--no-owner', '--exit-on-error', '--single-transaction', `--dbname=${restoredUrl}`, file]);

      const restored = await openDatabase({ databaseUrl: restoredUrl.toString(), poolSize: 2 });
      try {
        assert.deepEqual(await dataSnapshot(restored.db), before);
        const report = await diagnose({ database: restored, clock, config: loadConfig({ LOG_LEVEL: 'silent' }) });
        assert.deepEqual(checksOf(report), []);
        assert.equal(report.upstream_settlement_owed.count, 3);
        // The restored journal still refuses edits: the triggers came back with the data.
        await assert.rejects(restored.db.execute(sql`DELETE FROM ledger_transfers`), (error: Error) =>
          /ledger rows are immutable/.test(String((error.cause as Error | undefined)?.message)),
        );
      } finally {
        await restored.close();
      }
    } finally {
      await app.close();
      await admin.query(`DROP DATABASE IF EXISTS ${restoredName} WITH (FORCE)`);
      await admin.end();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
