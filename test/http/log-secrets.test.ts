import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyPluginAsync } from 'fastify';
import { hashPassword } from '../../src/accounts/passwords.ts';
import { hashToken } from '../../src/accounts/tokens.ts';
import { run } from '../../src/cli/main.ts';
import { redactUrl } from '../../src/config.ts';
import { scrubSecrets } from '../../src/logging.ts';
import { firstRow } from '../../src/db/database.ts';
import { engines, freshDatabase, testDatabaseUrl, type TestDatabase } from '../support/db.ts';
import { startTestApp, withTestRoutes, type InProcessApp, type TestApp } from '../support/app.ts';
import { assertProblem, call, registerUser } from '../support/http.ts';

/**
 * Secrets in logs: a failed statement's parameters (a scrypt salt and hash, an API-key hash) never
 * reach a log line, and a connection string is printed with every secret masked, whatever its form.
 * The log output below is the real one: a real statement fails in the database, the server's own
 * logger writes the line, the test reads it.
 */
const statementsOnCredentials = (secrets: { passwordHash: string; keyHash: string }): FastifyPluginAsync =>
  async (app) => {
    const { db } = app.ctx.database;
    // Both fail in the database, with the secrets as bound parameters: a duplicate email, a role the CHECK refuses.
    app.post('/v1/test/duplicate-user', async () => {
      const existing = await firstRow<{ email: string }>(db, sql`SELECT email FROM users ORDER BY created_at LIMIT 1`);
      await db.execute(
        sql`INSERT INTO users (email, password_hash, role, created_at) VALUES (${existing!.email}, ${secrets.passwordHash}, 'customer', now())`,
      );
    });
    app.post('/v1/test/bad-key', async () => {
      await db.execute(
        sql`INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) VALUES (${'00000000-0000-4000-8000-000000000000'}, 'x', 'nsk_', ${secrets.keyHash}, now())`,
      );
    });
    // A statement on no credential table, for the debug-level case.
    app.post('/v1/test/bad-service', async () => {
      await db.execute(
        sql`INSERT INTO services (provider, service, country, name, price_minor, cost_minor)
            VALUES (${'sandbox'}, ${'svc-param-visible'}, ${'US'}, ${'Name'}, ${-5}, ${1})`,
      );
    });
  };

function linesWith(lines: string[], needle: string): Record<string, any>[] {
  return lines.filter((l) => l.includes(needle)).map((l) => JSON.parse(l));
}

for (const engine of engines) {
  describe(`a failing statement is logged without its parameters [${engine}]`, () => {
    const secrets = { passwordHash: '', keyHash: hashToken('nsk_secret-key-material-never-logged') };
    let salt = '';
    let hash = '';
    const infoLines: string[] = [];
    const debugLines: string[] = [];
    let info: TestApp;
    let debug: TestApp;
    let infoRoutes: InProcessApp;
    let debugRoutes: InProcessApp;
    before(async () => {
      secrets.passwordHash = await hashPassword('the-hashed-password');
      const parts = secrets.passwordHash.split('$');
      salt = parts[4] ?? '';
      hash = parts[5] ?? '';
      const routes = statementsOnCredentials(secrets);
      info = await startTestApp({ engine, worker: false, logDestination: { write: (l: string) => void infoLines.push(l) } });
      debug = await startTestApp({
        engine,
        worker: false,
        env: { LOG_LEVEL: 'debug' },
        logDestination: { write: (l: string) => void debugLines.push(l) },
      });
      infoRoutes = await withTestRoutes(info, routes);
      debugRoutes = await withTestRoutes(debug, routes);
    });
    after(async () => {
      await infoRoutes.close();
      await debugRoutes.close();
      await info.close();
      await debug.close();
    });

    test('at info: the statement and the database error are logged, the salt, hash and key hash are not', async () => {
      await registerUser(info.url);
      assertProblem(await infoRoutes.call('POST', '/v1/test/duplicate-user'), 500, 'internal_error');
      assertProblem(await infoRoutes.call('POST', '/v1/test/bad-key'), 500, 'internal_error');
      const text = infoLines.join('');
      for (const secret of [salt, hash, secrets.keyHash, secrets.passwordHash]) {
        assert.ok(secret.length >= 16 && !text.includes(secret), `secret ${secret.slice(0, 8)}… leaked into the log`);
      }
      const [duplicate] = linesWith(infoLines, 'INSERT INTO users');
      assert.ok(duplicate, 'the failed statement is logged');
      assert.match(duplicate.err.message, /Failed query: INSERT INTO users .*\nparams: \[not logged\]/s);
      assert.match(duplicate.err.message, /duplicate key value violates unique constraint/, 'the database error stays');
      assert.equal(duplicate.err.params, undefined);
      const [badKey] = linesWith(infoLines, 'INSERT INTO api_keys');
      assert.ok(badKey, 'the failed statement is logged');
      assert.match(badKey.err.message, /params: \[not logged\]/);
      assert.equal(badKey.err.params, undefined);
    });

    test('at debug: parameters of a statement on another table are logged; on a credential table still not', async () => {
      await registerUser(debug.url);
      assertProblem(await debugRoutes.call('POST', '/v1/test/bad-service'), 500, 'internal_error');
      assertProblem(await debugRoutes.call('POST', '/v1/test/duplicate-user'), 500, 'internal_error');
      const [service] = linesWith(debugLines, 'INSERT INTO services');
      assert.ok(service, 'the failed statement is logged');
      assert.deepEqual(service.err.params, ['sandbox', 'svc-param-visible', 'US', 'Name', -5, 1]);
      assert.match(service.err.message, /params: \[not logged\]: .*violates check constraint/s, 'the message itself never carries them');
      const [duplicate] = linesWith(debugLines, 'INSERT INTO users');
      assert.ok(duplicate, 'the failed statement is logged');
      assert.equal(duplicate.err.params, undefined);
      const text = debugLines.join('');
      for (const secret of [salt, hash, secrets.passwordHash]) assert.ok(!text.includes(secret), 'credential parameters never logged');
    });
  });
}

describe('connection strings are redacted by a URL parser, every form', () => {
  const forms: [string, string][] = [
    ['postgres://app:hunter2@db.internal:5432/namaskah', 'postgres://app:***@db.internal:5432/namaskah'],
    ['postgres://:hunter2@db.internal/namaskah', 'postgres://:***@db.internal/namaskah'],
    ['postgresql://app@db.internal/namaskah?password=hunter2&sslmode=require', 'postgresql://app@db.internal/namaskah?password=***&sslmode=require'],
    ['postgres://app:hunter2@db.internal/namaskah?sslpassword=hunter3&sslmode=verify-full', 'postgres://app:***@db.internal/namaskah?sslpassword=***&sslmode=verify-full'],
    ['postgres://app:hunter2@[2001:db8::5]:5432/namaskah', 'postgres://app:***@[2001:db8::5]:5432/namaskah'],
    ['postgres://app:hunt%40er2@db.internal/namaskah', 'postgres://app:***@db.internal/namaskah'],
    ['postgres://app:hunt@er2@db.internal/namaskah', 'postgres://app:***@db.internal/namaskah'],
    ['postgres://app:hunter2@/namaskah?host=/var/run/postgresql', 'postgres://***@/namaskah?host=/var/run/postgresql'],
    ['postgres:///namaskah?host=%2Fvar%2Frun&Password=hunter2', 'postgres:///namaskah?host=%2Fvar%2Frun&Password=***'],
  ];
  for (const [url, expected] of forms) {
    test(url.replace(/hunt\S*?(?=@|&|$)/g, '…'), () => {
      assert.equal(redactUrl(url), expected);
      assert.ok(!scrubSecrets(`could not connect to ${url}: refused`).includes('hunter'), 'in free text too');
      assert.ok(!scrubSecrets(`(${url}).`).includes('hunter'), 'inside punctuation');
    });
  }

  test('nothing to mask: unchanged, also in free text', () => {
    for (const url of ['postgres://app@db.internal:5432/namaskah', 'postgres://db.internal/namaskah?sslmode=require', 'http://127.0.0.1:3000']) {
      assert.equal(redactUrl(url), url);
    }
    assert.equal(scrubSecrets('serving at http://127.0.0.1:46265); stop it'), 'serving at http://127.0.0.1:46265); stop it');
  });
});

describe('the CLI and the start-up log line never print a connection-string secret', { skip: !testDatabaseUrl }, () => {
  let t: TestDatabase;
  let withSecrets: string;
  before(async () => {
    t = await freshDatabase('postgres');
    // Trust auth ignores passwords: a URL carrying them in every place still connects.
    const url = new URL(t.databaseUrl!);
    url.username = 'postgres';
    url.password = 'url-Secret-1';
    url.search = '?password=query-Secret-2&sslpassword=query-Secret-3';
    withSecrets = url.toString();
  });
  after(() => t.dispose());

  test('namaskah migrate names the database with its secrets masked', async () => {
    let stdout = '';
    let stderr = '';
    const code = await run(['migrate'], {
      env: { LOG_LEVEL: 'silent', DATABASE_URL: withSecrets, DATA_DIR: join(tmpdir(), 'namaskah-unused') },
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
      waitForShutdown: () => new Promise(() => {}),
    });
    assert.equal(code, 0, stderr);
    assert.match(stdout, /PostgreSQL postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\/namaskah_test_[0-9a-f]+\?password=\*\*\*&sslpassword=\*\*\*/);
    assert.doesNotMatch(stdout + stderr, /Secret-/);
  });

  test('an empty user with a password, unreachable: the error has no secret', async () => {
    let stderr = '';
    const code = await run(['users', 'list'], {
      env: { LOG_LEVEL: 'silent', DATABASE_URL: 'postgres://:empty-User-Secret@127.0.0.1:1/nowhere?sslpassword=other-Secret', DATA_DIR: join(tmpdir(), 'namaskah-unused') },
      stdout: () => {},
      stderr: (text) => void (stderr += text),
      waitForShutdown: () => new Promise(() => {}),
    });
    assert.equal(code, 1);
    assert.doesNotMatch(stderr, /Secret/);
  });

  test("the server's 'database opened' line", async () => {
    const lines: string[] = [];
    const dataDir = mkdtempSync(join(tmpdir(), 'namaskah-log-'));
    const app = await startTestApp({ engine: 'postgres', worker: false, env: { DATABASE_URL: withSecrets, DATA_DIR: dataDir }, logDestination: { write: (l: string) => void lines.push(l) } });
    try {
      const [opened] = linesWith(lines, 'database opened');
      assert.match(opened!.database, /^postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\/namaskah_test_[0-9a-f]+\?password=\*\*\*&sslpassword=\*\*\*$/);
      assert.doesNotMatch(lines.join(''), /Secret-/);
    } finally {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
