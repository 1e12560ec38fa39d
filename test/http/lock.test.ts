import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../src/config.ts';
import { DataDirLockedError, lockPath, readLock } from '../../src/db/lock.ts';
import { opsTokenPath } from '../../src/accounts/ops-token.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { seedEmbeddedDatabase, startTestApp, type TestApp } from '../support/app.ts';
import { call } from '../support/http.ts';
import { runNamaskah } from '../support/cli.ts';

/** The embedded data directory: one process at a time, stale locks taken over only when the pid is dead. */
describe('embedded data-dir lock', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp();
  });
  after(() => app.close());

  test('the running server holds the lock with its pid and URL, and a 0600 operator token', () => {
    const lock = readLock(app.dataDir!);
    assert.equal(lock?.pid, process.pid);
    assert.equal(lock?.url, app.url);
    const mode = statSync(opsTokenPath(app.dataDir!)).mode & 0o777;
    assert.equal(mode, 0o600);
  });

  test('a second startServer on the same DATA_DIR is refused with a clear error', async () => {
    const config = loadConfig({ ...process.env, DATA_DIR: app.dataDir!, PORT: '0', LOG_LEVEL: 'silent', DATABASE_URL: '' });
    await assert.rejects(
      startServer(config, { logger: pino({ level: 'silent' }), print: () => {} }),
      (error: unknown) => {
        assert.ok(error instanceof DataDirLockedError);
        assert.match(error.message, new RegExp(`in use by process ${process.pid}`));
        assert.ok(error.message.includes(app.url));
        return true;
      },
    );
    assert.equal((await call(app.url, 'GET', '/health')).status, 200, 'the first server is unharmed');
    assert.equal(readLock(app.dataDir!)?.pid, process.pid);
  });

  test('a second process (namaskah serve) on the same DATA_DIR exits 1 and says who holds it', async () => {
    const result = await runNamaskah(['serve'], { DATA_DIR: app.dataDir!, PORT: '0', LOG_LEVEL: 'silent' });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`data directory .* is in use by process ${process.pid} \\(namaskah serving at ${app.url.replace(/[.]/g, '\\.')}\\)`));
    assert.equal((await call(app.url, 'GET', '/health')).status, 200);
  });
});

describe('stale data-dir lock', () => {
  let dir: string;
  let server: RunningServer | undefined;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'namaskah-stale-'));
    await seedEmbeddedDatabase(dir);
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a lock left by a dead pid is taken over; close releases it and removes the operator token', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(lockPath(dir), JSON.stringify({ pid: dead, startedAt: '2026-01-01T00:00:00.000Z', url: 'http://127.0.0.1:1' }));
    const config = loadConfig({ ...process.env, DATA_DIR: dir, PORT: '0', LOG_LEVEL: 'silent', DATABASE_URL: '', ADMIN_EMAIL: 'root@example.test', ADMIN_PASSWORD: 'cedar-signal-65' });
    server = await startServer(config, { logger: pino({ level: 'silent' }), print: () => {} });
    const lock = JSON.parse(readFileSync(lockPath(dir), 'utf8'));
    assert.equal(lock.pid, process.pid);
    assert.equal(lock.url, server.url);
    assert.ok(existsSync(opsTokenPath(dir)));
    await server.close();
    server = undefined;
    assert.equal(existsSync(lockPath(dir)), false);
    assert.equal(existsSync(opsTokenPath(dir)), false);
  });
});
