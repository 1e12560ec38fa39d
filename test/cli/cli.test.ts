import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { authenticateUser } from '../../src/accounts/users.ts';
import { loadConfig } from '../../src/config.ts';
import { rows } from '../../src/db/database.ts';
import { openConfiguredDatabase } from '../../src/server.ts';
import { freshDatabase, testDatabaseUrl, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { login } from '../support/http.ts';
import { runCli, runNamaskah } from '../support/cli.ts';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

const cli = runCli;

/** The real executable, in its own process. */
async function bin(args: string[], env: Record<string, string>): Promise<Result> {
  const run = await runNamaskah(args, { LOG_LEVEL: 'silent', ...env });
  return { ...run, code: run.code ?? -1 };
}

interface Listed {
  id: string;
  email: string;
  role: string;
  balance_minor: number;
  held_minor: number;
  available_minor: number;
}

async function listed(env: Record<string, string>): Promise<Listed[]> {
  const result = await cli(['users', 'list', '--json'], env);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as Listed[];
}

async function balanceOf(env: Record<string, string>, email: string): Promise<number> {
  const user = (await listed(env)).find((u) => u.email === email);
  assert.ok(user, `${email} listed`);
  return user.balance_minor;
}

describe('CLI usage errors (no database needed)', () => {
  const env = { DATA_DIR: join(tmpdir(), 'namaskah-cli-never-created') };

  test('no command, unknown commands and options, missing arguments: exit 2 with a message on stderr', async () => {
    for (const [args, message] of [
      [[], /Usage: namaskah/],
      [['bogus'], /unknown command 'bogus'/],
      [['users', 'frobnicate'], /unknown command 'frobnicate'/],
      [['users', 'create'], /missing required argument 'email'/],
      [['users', 'credit', 'a@example.com'], /missing required argument 'amount'/],
      [['users', 'credit', 'a@example.com', '5'], /--reason is required/],
      [['users', 'list', '--yaml'], /unknown option '--yaml'/],
      [['users', 'create', 'not-an-email'], /"not-an-email" is not a valid email address/],
      [['users', 'create', 'a@example.com', '--password', 'short'], /--password must be 8-200 characters/],
      [['users', 'credit', 'a@example.com', '1.234', '--reason', 'x'], /at most 2 decimals/],
      [['users', 'credit', 'a@example.com', '0', '--reason', 'x'], /must not be zero/],
      [['users', 'credit', 'a@example.com', '12,50', '--reason', 'x'], /not a decimal amount/],
      [['users', 'credit', 'a@example.com', '5', '--reason', ' '], /--reason must be 1-500 characters/],
      [['users', 'credit', 'a@example.com', '5', '--reason', 'x', '--idempotency-key', 'ключ'], /--idempotency-key must be/],
    ] as [string[], RegExp][]) {
      const result = await cli(args, env);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
    }
  });

  test('help exits 0', async () => {
    const result = await cli(['users', 'credit', '--help'], env);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /--idempotency-key <key>/);
  });

  test('an invalid configuration is a failure (exit 1) that names the variable', async () => {
    const result = await cli(['users', 'list'], { ...env, DATABASE_URL: 'mysql://nope' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /DATABASE_URL: must be a postgres:\/\/ URL/);
  });
});

describe('CLI on an embedded data directory', () => {
  let dir: string;
  let env: Record<string, string>;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'namaskah-cli-'));
    env = { DATA_DIR: dir };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('migrate applies the migrations once; the second run is a no-op', async () => {
    const first = await cli(['migrate'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /applied \d+ migration\(s\) to embedded database in .*0001_foundation/);
    const second = await cli(['migrate'], env);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /up to date; nothing to apply/);
  });

  test('users create: generated password printed once and working; --admin; duplicates and bad input refused', async () => {
    const created = await cli(['users', 'create', 'Alice@Example.com'], env);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /created customer alice@example\.com \(id [0-9a-f-]{36}\)/);
    const password = /password: (\S+)/.exec(created.stdout)![1]!;
    assert.equal(password.length, 24);

    const known = 'Known-Secret-Pass-1';
    const admin = await cli(['users', 'create', 'root@example.com', '--admin', '--password', known], env);
    assert.equal(admin.code, 0, admin.stderr);
    assert.match(admin.stdout, /created admin root@example\.com/);
    assert.ok(!admin.stdout.includes(known) && !admin.stderr.includes(known), 'a given password is never echoed');

    const duplicate = await cli(['users', 'create', 'ALICE@example.com'], env);
    assert.equal(duplicate.code, 1);
    assert.match(duplicate.stderr, /already exists/);

    const opened = await openConfiguredDatabase(loadConfig({ DATA_DIR: dir }), new Date());
    try {
      assert.equal((await authenticateUser(opened.database.db, 'alice@example.com', password)).role, 'customer');
      assert.equal((await authenticateUser(opened.database.db, 'root@example.com', known)).role, 'admin');
      const audit = await rows<{ actor: string; action: string }>(opened.database.db, sql`SELECT actor, action FROM audit_log ORDER BY id`);
      assert.deepEqual(audit, [
        { actor: 'cli', action: 'user.create' },
        { actor: 'cli', action: 'user.create' },
      ]);
    } finally {
      await opened.close();
    }
  });

  test('users list: a table, or JSON with balances; never a hash', async () => {
    const table = await cli(['users', 'list'], env);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^EMAIL\s+ROLE\s+BALANCE\s+HELD\s+AVAILABLE\s+CREATED$/m);
    assert.match(table.stdout, /alice@example\.com\s+customer\s+0\.00 USD/);
    const users = await listed(env);
    assert.deepEqual(users.map((u) => [u.email, u.role, u.balance_minor]).sort(), [
      ['alice@example.com', 'customer', 0],
      ['root@example.com', 'admin', 0],
    ]);
    assert.doesNotMatch(table.stdout + JSON.stringify(users), /scrypt\$/);
  });

  test('users credit: exact minor units, adjustments, idempotent retries; bad input changes nothing', async () => {
    const ok = await cli(['users', 'credit', 'alice@example.com', '12.50', '--reason', 'welcome'], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /credited 12\.50 USD to alice@example\.com \(transfer [0-9a-f-]{36}\)/);
    assert.match(ok.stdout, /balance 12\.50 USD, held 0\.00 USD, available 12\.50 USD/);

    assert.equal((await cli(['users', 'credit', 'alice@example.com', '0.05', '--reason', 'cents'], env)).code, 0);
    const down = await cli(['users', 'credit', 'alice@example.com', '-2.5', '--reason', 'correction'], env);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /debited 2\.50 USD from alice@example\.com/);
    assert.match(down.stdout, /balance 10\.05 USD/);

    const keyed = ['users', 'credit', 'alice@example.com', '1', '--reason', 'retry-safe', '--idempotency-key', 'ticket-42'];
    const first = await cli(keyed, env);
    const retry = await cli(keyed, env);
    assert.equal(first.code, 0);
    assert.equal(retry.code, 0);
    assert.match(retry.stdout, /already done with idempotency key "ticket-42"/);
    assert.equal(/transfer ([0-9a-f-]{36})/.exec(first.stdout)![1], /transfer ([0-9a-f-]{36})/.exec(retry.stdout)![1]);
    assert.equal(await balanceOf(env, 'alice@example.com'), 1105);
    const mismatch = await cli(['users', 'credit', 'alice@example.com', '2', '--reason', 'retry-safe', '--idempotency-key', 'ticket-42'], env);
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /idempotency key was used for a different transfer/);

    for (const amount of ['1.234', '0', '0.00', 'abc', '1e3', '12,50', '+5', '', '.5', '5.']) {
      const bad = await cli(['users', 'credit', 'alice@example.com', amount, '--reason', 'bad'], env);
      assert.equal(bad.code, 2, `${JSON.stringify(amount)}: ${bad.stderr}`);
      assert.match(bad.stderr, /^error: /);
    }
    const unknown = await cli(['users', 'credit', 'nobody@example.com', '5', '--reason', 'x'], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no user with email nobody@example\.com/);
    const overdraw = await cli(['users', 'credit', 'alice@example.com', '-11.06', '--reason', 'x'], env);
    assert.equal(overdraw.code, 1);
    assert.match(overdraw.stderr, /insufficient available balance/);
    assert.equal(await balanceOf(env, 'alice@example.com'), 1105, 'nothing changed');
  });
});

describe('CLI while the embedded server is running', () => {
  let app: TestApp;
  let env: Record<string, string>;
  before(async () => {
    app = await startTestApp();
    env = { DATA_DIR: app.dataDir! };
  });
  after(() => app.close());

  test('users commands go through the server with its local operator token', async () => {
    const created = await cli(['users', 'create', 'bob@example.com', '--password', 'bob-password'], env);
    assert.equal(created.code, 0, created.stderr);
    const credit = await cli(['users', 'credit', 'bob@example.com', '7.25', '--reason', 'over http', '--idempotency-key', 'k-1'], env);
    assert.equal(credit.code, 0, credit.stderr);
    const retry = await cli(['users', 'credit', 'bob@example.com', '7.25', '--reason', 'over http', '--idempotency-key', 'k-1'], env);
    assert.match(retry.stdout, /already done/);
    const bob = await login(app.url, 'bob@example.com', 'bob-password');
    assert.equal((await bob.client.get('/v1/wallet')).body.available_minor, 725);
    const audit = await rows<{ actor: string; actor_id: string | null; action: string }>(
      app.ctx.database.db,
      sql`SELECT actor, actor_id, action FROM audit_log WHERE subject_id = ${bob.id} ORDER BY id`,
    );
    assert.deepEqual(audit, [
      { actor: 'cli', actor_id: null, action: 'user.create' },
      { actor: 'cli', actor_id: null, action: 'wallet.credit' },
    ]);
    const unknown = await cli(['users', 'credit', 'nobody@example.com', '5', '--reason', 'x'], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no user with email/);
  });

  test('migrate refuses clearly instead of opening the directory', async () => {
    const result = await cli(['migrate'], env);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`in use by process ${process.pid} \\(namaskah serving at`));
    assert.match(result.stderr, /applied the migrations when it started/);
  });

  test('the executable in another process: users list --json through the server; no token in the output', async () => {
    const result = await bin(['users', 'list', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const users = JSON.parse(result.stdout) as Listed[];
    assert.ok(users.some((u) => u.email === 'bob@example.com' && u.available_minor === 725));
    assert.ok(users.some((u) => u.email === app.admin.email && u.role === 'admin'));
    assert.doesNotMatch(result.stdout + result.stderr, /nso_|nss_|nsk_|scrypt\$/);
  });
});

describe('CLI on PostgreSQL', { skip: !testDatabaseUrl }, () => {
  let t: TestDatabase;
  let env: Record<string, string>;
  let withPassword: string;
  before(async () => {
    t = await freshDatabase('postgres');
    // Trust auth ignores the password, so a URL carrying one still connects: the password must not show.
    const url = new URL(t.databaseUrl!);
    url.password = 'pg-Secret-Hunter2';
    withPassword = url.toString();
    env = { DATABASE_URL: withPassword, DATA_DIR: join(tmpdir(), 'namaskah-cli-unused') };
  });
  after(() => t.dispose());

  test('migrate, users create/credit/list; no command prints the connection password', async () => {
    const outputs: Result[] = [];
    const step = async (args: string[], expected = 0) => {
      const result = await cli(args, env);
      outputs.push(result);
      assert.equal(result.code, expected, `${args.join(' ')}: ${result.stderr}`);
      return result;
    };
    const migrate = await step(['migrate']);
    assert.match(migrate.stdout, /up to date/);
    assert.match(migrate.stdout, /PostgreSQL postgres:\/\/postgres:\*\*\*@/);
    await step(['users', 'create', 'carol@example.com', '--password', 'violet-harbor-12']);
    await step(['users', 'credit', 'carol@example.com', '99.99', '--reason', 'pg']);
    await step(['users', 'credit', 'carol@example.com', '0.01', '--reason', 'pg']);
    assert.equal(await balanceOf(env, 'carol@example.com'), 10000);
    await step(['users', 'credit', 'carol@example.com', '1.001', '--reason', 'pg'], 2);
    await step(['users', 'credit', 'dan@example.com', '1', '--reason', 'pg'], 1);
    assert.equal(await balanceOf(env, 'carol@example.com'), 10000);
    for (const output of outputs) assert.ok(!(output.stdout + output.stderr).includes('pg-Secret-Hunter2'));
  });

  test('an unreachable database: exit 1, the message without the password', async () => {
    const result = await cli(['users', 'list'], { ...env, DATABASE_URL: 'postgres://app:pg-Secret-Hunter2@127.0.0.1:1/nowhere' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: /);
    assert.ok(!result.stderr.includes('pg-Secret-Hunter2'));
  });
});
