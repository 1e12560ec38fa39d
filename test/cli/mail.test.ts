import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedEmbeddedDatabase, startTestApp, type TestApp } from '../support/app.ts';
import { runCli } from '../support/cli.ts';
import { call, registerUser } from '../support/http.ts';

/** `namaskah mail`: the local outbox, through a running embedded server or straight from the data directory. */
const cli = runCli;

describe('namaskah mail', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp({ worker: false });
  });
  after(() => app.close());

  test('prints the verification link a sign-up left in the outbox; the link works', async () => {
    const user = await registerUser(app.url);
    await app.app.mailer.settled();
    const printed = await cli(['mail', '--to', user.email.toUpperCase()], { DATA_DIR: app.dataDir! });
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, new RegExp(`to ${user.email.replace(/[.+]/g, '\\$&')}\\nSubject: Confirm your email address`));
    const token = /#\/verify-email\?token=(nse_[A-Za-z0-9_-]+)/.exec(printed.stdout)?.[1];
    assert.ok(token, printed.stdout);
    assert.equal((await call(app.url, 'POST', '/v1/auth/verify-email', { body: { token } })).status, 200);

    const json = await cli(['mail', '--json', '--limit', '1'], { DATA_DIR: app.dataDir! });
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { to: string; subject: string }[];
    assert.equal(parsed.length, 1);
  });

  test('misuse is explained, exit code 2', async () => {
    const badLimit = await cli(['mail', '--limit', 'lots'], { DATA_DIR: app.dataDir! });
    assert.equal(badLimit.code, 2);
    assert.match(badLimit.stderr, /--limit must be a whole number from 1 to 200/);
    const badTo = await cli(['mail', '--to', 'not-an-email'], { DATA_DIR: app.dataDir! });
    assert.equal(badTo.code, 2);
    assert.match(badTo.stderr, /not a valid email address/);
    const unknown = await cli(['mail', '--everything'], { DATA_DIR: app.dataDir! });
    assert.equal(unknown.code, 2);
  });

  test('with no server running it reads the data directory itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'namaskah-mail-'));
    try {
      await seedEmbeddedDatabase(dir);
      const empty = await cli(['mail'], { DATA_DIR: dir });
      assert.equal(empty.code, 0, empty.stderr);
      assert.match(empty.stdout, /the outbox is empty/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
