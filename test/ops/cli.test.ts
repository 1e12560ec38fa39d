import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { seedSandboxCatalogue } from '../../src/catalogue/catalogue.ts';
import { systemClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { firstRow, rows, type Database } from '../../src/db/database.ts';
import { creditWallet, openWallet } from '../../src/ledger/ledger.ts';
import { openConfiguredDatabase, prepareDatabase } from '../../src/server.ts';
import { recordMessages, type LifecycleDeps } from '../../src/verifications/lifecycle.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';
import { engines } from '../support/db.ts';
import { lifecycleHarness } from '../support/lifecycle.ts';
import { runNamaskah, type CommandRun } from '../support/cli.ts';

/**
 * The CLI as an operator runs it: a separate process, its exit codes, its output — and never a
 * password or connection string in that output, even when DATABASE_URL carries one.
 */
const DB_PASSWORD = 's3cret-pw';
const ADMIN_PASSWORD = 'adm1n-s3cret-pw';

/** Runs the CLI and asserts it printed no secret and no connection string, whatever happened. */
async function namaskah(args: string[], env: Record<string, string>): Promise<CommandRun> {
  const run = await runNamaskah(args, { NODE_ENV: 'test', LOG_LEVEL: 'warn', ADMIN_EMAIL: 'admin@example.test', ADMIN_PASSWORD, ...env });
  for (const secret of [DB_PASSWORD, ADMIN_PASSWORD]) {
    assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), `namaskah ${args.join(' ')} printed a secret`);
  }
  assert.ok(!/postgres(ql)?:\/\//.test(run.stdout + run.stderr), `namaskah ${args.join(' ')} printed a connection string`);
  return run;
}

const json = (run: CommandRun) => JSON.parse(run.stdout);

/** Three repairable problems: a hold past its deadline, a terminal hold never released, a charge captured for a cancelled verification. */
async function injectProblems(deps: LifecycleDeps, userId: string): Promise<void> {
  const ex = deps.database.db;
  const now = deps.clock.now();
  const buy = async () => (await purchaseVerification(deps, { userId, idempotencyKey: randomUUID(), service: 'test_timeout' })).row;
  const stuck = await buy();
  await ex.execute(sql`UPDATE verifications SET expires_at = ${new Date(now.getTime() - 600_000)} WHERE id = ${stuck.id}`);
  const unresolved = await buy();
  await ex.execute(sql`UPDATE verifications SET state = 'cancelled', resolved_at = ${now} WHERE id = ${unresolved.id}`);
  const captured = await buy();
  const delivered = await recordMessages(deps, captured.id, [{ providerMessageId: 'm1', text: 'code 123456', code: '123456', receivedAt: deps.clock.now() }], 'poller');
  assert.ok(delivered?.captured);
  await ex.execute(sql`UPDATE verifications SET state = 'cancelled' WHERE id = ${captured.id}`);
}

/** The operator's session: diagnose fails, a dry run lists, execute repairs everything, diagnose passes. */
async function operatorSession(env: Record<string, string>, database: () => Promise<Database>, release: () => Promise<void>): Promise<void> {
  const table = await namaskah(['diagnose'], env);
  assert.equal(table.code, 1, table.stderr);
  assert.match(table.stdout, /checks FAILED/);
  assert.match(table.stdout, /no_hold_past_deadline\s+FAIL\s+1/);
  assert.match(table.stderr, /^error: 3 invariant checks failed: /);

  const dry = await namaskah(['reconcile', '--days', '30', '--dry-run'], env);
  assert.equal(dry.code, 1, dry.stderr);
  assert.match(dry.stdout, /dry run, nothing changed/);
  assert.match(dry.stdout, /hold_past_deadline/);
  assert.match(dry.stdout, /terminal_hold_unresolved/);
  assert.match(dry.stdout, /wrongly_captured/);
  assert.equal(dry.stderr, 'error: 3 problems found (nothing was changed: run with --execute to repair)\n', 'no progress bar when stderr is not a terminal');

  const executed = await namaskah(['reconcile', '--days', '30', '--execute', '--json'], env);
  assert.equal(executed.code, 0, executed.stderr);
  const report = json(executed);
  assert.deepEqual(report.summary, { hold_past_deadline: 1, terminal_hold_unresolved: 1, wrongly_captured: 1 });
  assert.equal(report.repaired, 3);
  assert.equal(report.remaining, 0);

  const healthy = await namaskah(['diagnose', '--json'], env);
  assert.equal(healthy.code, 0, healthy.stderr);
  assert.equal(json(healthy).ok, true);

  const db = await database();
  try {
    const audit = await rows<{ actor: string }>(db.db, sql`SELECT actor FROM audit_log WHERE action = 'reconcile.execute'`);
    assert.deepEqual(
      audit.map((a) => a.actor),
      ['cli'],
    );
  } finally {
    await release();
  }
}

describe('namaskah reconcile / diagnose (CLI)', () => {
  test('usage errors exit 2', async () => {
    const env = { DATA_DIR: join(tmpdir(), `namaskah-unused-${randomUUID()}`) };
    const [neither, both, badDays, noDays] = await Promise.all([
      namaskah(['reconcile', '--days', '30'], env),
      namaskah(['reconcile', '--days', '30', '--dry-run', '--execute'], env),
      namaskah(['reconcile', '--days', 'abc', '--dry-run'], env),
      namaskah(['reconcile', '--dry-run'], env),
    ]);
    for (const run of [neither, both, badDays, noDays]) assert.equal(run.code, 2, run.stderr);
    assert.match(neither.stderr, /exactly one of --dry-run or --execute/);
    assert.match(badDays.stderr, /whole number of days/);
    assert.match(noDays.stderr, /--days/);
  });

  for (const engine of engines) {
    if (engine === 'postgres') {
      test('on PostgreSQL, with a password in DATABASE_URL that never shows', { timeout: 120_000 }, async () => {
        const h = await lifecycleHarness('postgres');
        try {
          h.clock.set(Date.now());
          await injectProblems(h.deps, await h.customer(1000));
          const url = new URL(h.t.databaseUrl!);
          url.password = DB_PASSWORD;
          const env = { DATABASE_URL: url.toString() };
          await operatorSession(env, async () => h.t.database, async () => {});

          url.pathname = `/namaskah_missing_${randomUUID().slice(0, 8)}`;
          const unreachable = await namaskah(['diagnose'], { DATABASE_URL: url.toString() });
          assert.equal(unreachable.code, 1);
          assert.equal(unreachable.stdout, '');
          assert.match(unreachable.stderr, /^error: cannot open the database/);
        } finally {
          await h.dispose();
        }
      });
    } else {
      test('embedded, no server running: the CLI opens the data directory itself', { timeout: 120_000 }, async () => {
        const dataDir = mkdtempSync(join(tmpdir(), 'namaskah-ops-cli-'));
        try {
          const config = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', SANDBOX_FAILURE_RATE: '0' });
          const open = async () => {
            const opened = await openConfiguredDatabase(config, systemClock.now());
            return opened;
          };
          const opened = await open();
          try {
            await prepareDatabase(opened.database, config, systemClock.now());
            await seedSandboxCatalogue(opened.database.db);
            const ctx = { config, database: opened.database, clock: systemClock, logger: pino({ level: 'silent' }) };
            const user = await firstRow<{ id: string }>(
              opened.database.db,
              sql`INSERT INTO users (email, password_hash, created_at) VALUES ('cli-ops@example.test', 'x', now()) RETURNING id`,
            );
            await openWallet(opened.database.db, user!.id, 'USD', systemClock.now());
            await creditWallet(opened.database.db, { userId: user!.id, amountMinor: 1000, kind: 'topup', actor: 'admin', reason: 'test', now: systemClock.now() });
            await injectProblems(createVerificationRuntime(ctx).deps, user!.id);
          } finally {
            await opened.close();
          }
          let reopened: Awaited<ReturnType<typeof open>> | undefined;
          await operatorSession(
            { DATA_DIR: dataDir },
            async () => (reopened = await open()).database,
            async () => reopened?.close(),
          );
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
      });
    }
  }
});
