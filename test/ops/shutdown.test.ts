import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { opsTokenPath } from '../../src/accounts/ops-token.ts';
import { creditUserWallet } from '../../src/accounts/admin.ts';
import { createUser } from '../../src/accounts/users.ts';
import { loadConfig } from '../../src/config.ts';
import { rows } from '../../src/db/database.ts';
import { lockPath } from '../../src/db/lock.ts';
import { openConfiguredDatabase } from '../../src/server.ts';
import { seedEmbeddedDatabase } from '../support/app.ts';
import { startFakeSmsActivate } from '../support/fake-sms-activate.ts';
import { call, login } from '../support/http.ts';

/**
 * Graceful shutdown of a real `namaskah serve` process (what systemd's SIGTERM does on stop and
 * restart): a purchase in flight when the signal arrives is finished and answered, the engine
 * stops after its tick and gives back its leases, and the process leaves nothing behind (lock,
 * operator token, worker row) and exits 0.
 */

const BIN = fileURLToPath(new URL('../../bin/namaskah.mjs', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** In front of the fake seller: holds each purchase (getNumber) until the test lets it through. */
async function holdingProxy(target: string) {
  let arrived!: () => void;
  const purchaseArrived = new Promise<void>((resolve) => (arrived = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const action = url.searchParams.get('action') ?? new URLSearchParams(body.toString()).get('action');
    if (action === 'getNumber' || action === 'getNumberV2') {
      arrived();
      await released;
    }
    const answer = await fetch(`${target}${url.search}`, {
      method: req.method,
      headers: { 'content-type': req.headers['content-type'] ?? 'application/x-www-form-urlencoded' },
      body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body,
    });
    res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
    res.end(Buffer.from(await answer.arrayBuffer()));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/stubs/handler_api.php`,
    purchaseArrived,
    release,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('graceful shutdown on SIGTERM', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'namaskah-shutdown-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test('a purchase in flight is finished and answered; leases, lock and token are released; exit 0', async () => {
    const fake = await startFakeSmsActivate();
    const proxy = await holdingProxy(fake.url);
    const env: Record<string, string> = {
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: '0',
      PROVIDER: 'sms-activate',
      SMS_ACTIVATE_BASE_URL: proxy.url,
      SMS_ACTIVATE_API_KEY: 'sa-test-key',
      PROVIDER_REQUESTS_PER_SECOND: '0',
      ENGINE_TICK_MS: '50',
      POLL_INTERVAL_MS: '100',
      LOG_LEVEL: process.env.SHUTDOWN_LOG ?? 'silent',
      COOKIE_SECURE: 'false',
      ADMIN_EMAIL: 'admin@example.test',
      ADMIN_PASSWORD: `root-${randomBytes(12).toString('base64url')}`,
    };
    const password = `pw-${randomBytes(12).toString('base64url')}`;

    // The catalogue and a customer with money, before the server owns the directory.
    await seedEmbeddedDatabase(dataDir);
    const opened = await openConfiguredDatabase(loadConfig(env), new Date());
    try {
      const { database } = opened;
      await database.db.execute(sql`
        INSERT INTO ledger_accounts (kind, code, currency, may_overdraw, created_at)
        VALUES ('system', 'funding', 'USD', true, now()), ('system', 'revenue', 'USD', false, now()), ('system', 'adjustments', 'USD', true, now())
        ON CONFLICT (code) DO NOTHING`);
      await database.db.execute(sql`
        INSERT INTO services (provider, service, country, name, price_minor, cost_minor) VALUES ('sms-activate', 'whatsapp', 'US', 'WhatsApp', 80, 60)`);
      const user = await createUser(database, { email: 'dana@example.test', password, role: 'customer' }, { currency: 'USD', now: new Date() });
      await creditUserWallet(database, { actor: { kind: 'operator' }, userId: user.id, amountMinor: 1_000, reason: 'top-up', now: new Date() });
    } finally {
      await opened.close();
    }

    const child = spawn(process.execPath, [BIN, 'serve'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const onData = () => {
          const found = /namaskah is serving at (http:\/\/\S+)/.exec(stderr);
          if (found) resolve(found[1]!);
        };
        child.stderr.on('data', onData);
        void exited.then(() => reject(new Error(`the server exited before serving:\n${stderr}`)));
      });
      const customer = await login(url, 'dana@example.test', password);

      // A live event stream open at the same time: it must not hold the shutdown open.
      const events = await fetch(new URL('/v1/events', url), { headers: { authorization: `Bearer ${customer.token}` } });
      assert.equal(events.status, 200);
      const streamEnded = (async () => {
        const reader = events.body!.getReader();
        while (!(await reader.read()).done);
        return 'ended';
      })().catch((error: unknown) => `failed: ${String(error)}`);

      const purchase = call(url, 'POST', '/v1/verifications', {
        token: customer.token,
        headers: { 'idempotency-key': randomUUID() },
        body: { service: 'whatsapp' },
      });
      // Settled here so a failure is reported with the server's output, not as an unhandled rejection.
      const settled = purchase.then(
        (answer) => ({ answer }),
        (error: unknown) => ({ error }),
      );
      await proxy.purchaseArrived;
      child.kill('SIGTERM');
      // Wait until the server is closing (new requests refused) while the purchase is still held upstream.
      let refused = false;
      for (let attempt = 0; attempt < 200 && !refused; attempt++) {
        const health = await fetch(new URL('/health', url)).catch(() => undefined);
        refused = health === undefined || health.status === 503;
        if (health) await health.arrayBuffer();
        if (!refused) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(refused, `the server stopped taking new requests after SIGTERM\n${stderr}`);
      proxy.release();

      const outcome = await settled;
      if ('error' in outcome) {
        await exited;
        throw new Error(`the purchase in flight was not answered: ${String(outcome.error)}\n${stderr}\n${stdout}`);
      }
      const answered = outcome.answer;
      assert.equal(answered.status, 201, answered.text);
      assert.equal(answered.body.state, 'waiting');
      const [code, signal] = await exited;
      assert.deepEqual([code, signal], [0, null], stderr);
      assert.match(stderr, /SIGTERM: shutting down/);
      assert.equal(await streamEnded, 'ended', 'the event stream was ended by the server');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await proxy.close();
      await fake.close();
    }

    assert.ok(!existsSync(lockPath(dataDir)), 'the data-directory lock is released');
    assert.ok(!existsSync(opsTokenPath(dataDir)), 'the local operator token is removed');
    const reopened = await openConfiguredDatabase(loadConfig(env), new Date());
    try {
      const db = reopened.database.db;
      assert.deepEqual(await rows(db, sql`SELECT id FROM engine_workers`), [], 'the worker removed itself');
      assert.deepEqual(await rows(db, sql`SELECT id FROM verifications WHERE lease_owner IS NOT NULL`), [], 'no lease is left');
      const [bought] = await rows<{ state: string; provider_order_id: string | null }>(db, sql`SELECT state, provider_order_id FROM verifications`);
      assert.equal(bought?.state, 'waiting');
      assert.ok(bought?.provider_order_id, 'the upstream order is recorded');
    } finally {
      await reopened.close();
    }
  });
});
