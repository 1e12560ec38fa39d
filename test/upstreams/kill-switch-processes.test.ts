import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { rows } from '../../src/db/database.ts';
import { creditWallet } from '../../src/ledger/ledger.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { testDatabaseUrl } from '../support/db.ts';
import { Client, login, registerUser, type TestUser } from '../support/http.ts';

/**
 * The kill switch across processes on PostgreSQL: two API processes (A: this test's server, B: a
 * `namaskah serve --no-worker`) and a `namaskah worker`, sharing one database. Disabled through A,
 * B refuses purchases within a second; the orders B had sold before still settle through the worker
 * (one SMS captured, one refunded at its deadline); re-enabled, B sells again.
 */
const BIN = fileURLToPath(new URL('../../bin/namaskah.mjs', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SWITCH_DEADLINE_MS = 1000;

interface Spawned {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the first match of `pattern` in the process's output. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

function spawnNamaskah(args: string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = once(child, 'exit');
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  return {
    child,
    output: () => output,
    waitFor(pattern) {
      return new Promise((resolve, reject) => {
        const look = () => {
          const found = pattern.exec(output);
          if (found) {
            child.stdout!.off('data', look);
            child.stderr!.off('data', look);
            resolve(found);
          }
        };
        child.stdout!.on('data', look);
        child.stderr!.on('data', look);
        look();
        void exited.then(() => reject(new Error(`namaskah ${args.join(' ')} exited first:\n${output}`)));
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function until<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`not within ${deadlineMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('the kill switch across two API processes and a worker [postgres]', { skip: testDatabaseUrl ? false : 'needs TEST_DATABASE_URL' }, () => {
  let a: TestApp;
  let b: Spawned;
  let worker: Spawned;
  let admin: TestUser;
  let customerAtA: TestUser;
  let customerAtB: Client;

  const ENV = { VERIFICATION_TTL_SECONDS: '10', SANDBOX_DELAY_MS: '1500', SANDBOX_FAILURE_RATE: '0', ENGINE_TICK_MS: '50', POLL_INTERVAL_MS: '100' };

  before(async () => {
    a = await startTestApp({ engine: 'postgres', worker: false, env: ENV });
    const shared = {
      ...ENV,
      DATABASE_URL: a.databaseUrl!,
      HOST: '127.0.0.1',
      PORT: '0',
      PROVIDER: 'sandbox',
      LOG_LEVEL: 'warn',
      COOKIE_SECURE: 'false',
      ADMIN_EMAIL: a.admin.email,
      ADMIN_PASSWORD: a.admin.password,
    };
    b = spawnNamaskah(['serve', '--no-worker'], shared);
    worker = spawnNamaskah(['worker'], shared);
    const [, urlB] = await b.waitFor(/namaskah is serving at (http:\/\/\S+)/);
    await worker.waitFor(/namaskah worker \S+ running/);
    admin = await login(a.url, a.admin.email, a.admin.password);
    customerAtA = await registerUser(a.url);
    customerAtB = new Client(urlB!, customerAtA.token);
    await creditWallet(a.ctx.database.db, { userId: customerAtA.id, amountMinor: 10_000, kind: 'topup', actor: 'admin', reason: 'test', now: new Date() });
  });
  after(async () => {
    await Promise.all([b?.stop(), worker?.stop()]);
    await a?.close();
  });

  const buyAt = (client: Client, service: string) => client.post('/v1/verifications', { service }, { headers: { 'idempotency-key': randomUUID() } });
  const state = async (id: string) => (await customerAtB.get(`/v1/verifications/${id}`)).body as { state: string; code: string | null; refunded: boolean };

  test('disabled in A: B refuses within a second, open orders settle through the worker, re-enabled: B sells', { timeout: 120_000 }, async () => {
    // Sold by B before the switch: one whose SMS comes after it, one that never gets one.
    const delivered = await buyAt(customerAtB, 'test_delayed');
    const silent = await buyAt(customerAtB, 'test_timeout');
    assert.equal(delivered.status, 201, delivered.text);
    assert.equal(silent.status, 201, silent.text);

    const disabled = await admin.client.request('PUT', '/v1/admin/upstreams/sandbox', { body: { mode: 'disabled' } });
    assert.equal(disabled.status, 200);
    // A, which made the change, refuses at once.
    assert.equal((await buyAt(customerAtA.client, 'test_success')).body.code, 'provider_unavailable');
    // B hears of it through the database.
    const refused = await until('B refuses purchases', SWITCH_DEADLINE_MS, async () => {
      const attempt = await buyAt(customerAtB, 'test_success');
      return attempt.status === 503 ? attempt : undefined;
    });
    assert.equal(refused.body.code, 'provider_unavailable');

    // The orders B sold before the switch settle through the worker: the SMS is captured, the other
    // is refunded at its deadline.
    const received = await until('the delivered order is captured', 30_000, async () => {
      const v = await state(delivered.body.id);
      return v.state === 'received' ? v : undefined;
    });
    assert.ok(received.code);
    const expired = await until('the silent order is refunded at its deadline', 60_000, async () => {
      const v = await state(silent.body.id);
      return v.state === 'expired' ? v : undefined;
    });
    assert.equal(expired.refunded, true);
    // Still refused while disabled.
    assert.equal((await buyAt(customerAtB, 'test_success')).body.code, 'provider_unavailable');

    const enabled = await admin.client.request('PUT', '/v1/admin/upstreams/sandbox', { body: { mode: 'enabled' } });
    assert.equal(enabled.status, 200);
    const sold = await until('B sells again', SWITCH_DEADLINE_MS, async () => {
      const attempt = await buyAt(customerAtB, 'test_success');
      return attempt.status === 201 ? attempt : undefined;
    });
    assert.equal(sold.body.state, 'waiting');

    // The money, once the worker has settled everything: every refused attempt left nothing; every
    // purchase that went through was charged for its code or refunded.
    await until('every order settled', 60_000, async () => {
      const [open] = await rows<{ n: number }>(
        a.ctx.database.db,
        sql`SELECT count(*)::int AS n FROM verifications WHERE user_id = ${customerAtA.id} AND state IN ('pending', 'waiting')`,
      );
      return Number(open!.n) === 0 ? true : undefined;
    });
    const counts = await rows<{ state: string; n: number }>(
      a.ctx.database.db,
      sql`SELECT state, count(*)::int AS n FROM verifications WHERE user_id = ${customerAtA.id} GROUP BY state ORDER BY state`,
    );
    const byState = Object.fromEntries(counts.map((c) => [c.state, Number(c.n)]));
    assert.equal(byState.failed, undefined, 'no purchase was started and failed: the refusals stored nothing');
    assert.equal(byState.expired, 1);
    const wallet = (await customerAtB.get('/v1/wallet')).body as { balance_minor: number; held_minor: number };
    assert.equal(wallet.held_minor, 0);
    const holds = await rows<{ n: number }>(
      a.ctx.database.db,
      sql`SELECT count(*)::int AS n FROM ledger_holds h JOIN ledger_accounts w ON w.id = h.account_id WHERE w.user_id = ${customerAtA.id}`,
    );
    const total = Object.values(byState).reduce((sum, n) => sum + n, 0);
    assert.equal(Number(holds[0]!.n), total, 'one hold per stored purchase, none for a refused one');
    assert.equal(wallet.balance_minor, 10_000 - 50 * (byState.received ?? 0));
  });
});
