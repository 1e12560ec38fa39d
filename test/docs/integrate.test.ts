import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startTestApp, type TestApp } from '../support/app.ts';
import { login, registerUser } from '../support/http.ts';

const run = promisify(execFile);
const GUIDE = fileURLToPath(new URL('../../docs/integrate.md', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../clients/typescript/index.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The examples of docs/integrate.md marked `<!-- example: name -->`, as written there. */
function examples(): Map<string, string> {
  const found = new Map<string, string>();
  for (const match of readFileSync(GUIDE, 'utf8').matchAll(/<!-- example: ([\w-]+) -->\n```ts\n([\s\S]*?)\n```/g)) {
    found.set(match[1]!, match[2]!);
  }
  return found;
}

/** docs/integrate.md's examples run as a customer would run them (a separate process, an API key) against a sandbox server. */
describe('docs/integrate.md examples', () => {
  let app: TestApp;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const written = examples();

  before(async () => {
    app = await startTestApp();
    dir = mkdtempSync(join(tmpdir(), 'namaskah-integrate-'));
    const customer = await registerUser(app.url);
    const admin = await login(app.url, app.admin.email, app.admin.password);
    assert.equal((await admin.client.post(`/v1/admin/users/${customer.id}/credit`, { amount_minor: 500, reason: 'examples' })).status, 201);
    const key = await customer.client.post('/v1/api-keys', { name: 'examples' });
    env = { ...process.env, NAMASKAH_URL: app.url, NAMASKAH_TOKEN: key.body.key };
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await app.close();
  });

  async function runExample(name: string): Promise<string> {
    const source = written.get(name);
    assert.ok(source, `docs/integrate.md has no example "${name}"`);
    // The guide imports the client from a checkout's root; here the file lives elsewhere.
    const file = join(dir, `${name}.mts`);
    writeFileSync(file, source.replaceAll("'./clients/typescript/index.ts'", JSON.stringify(CLIENT)));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', file], { env, cwd: ROOT, timeout: 60_000 });
    return stdout;
  }

  test('every marked example is run below', () => {
    assert.deepEqual([...written.keys()].sort(), ['buy-and-wait', 'errors', 'pagination', 'retry']);
  });

  test('buy and wait: the code arrives over live events', async () => {
    assert.match(await runExample('buy-and-wait'), /^number \d+, waiting until .*\ncode \d{4,8}\n$/);
  });

  test('retry: the same key gives the same verification, replayed', async () => {
    assert.equal(await runExample('retry'), 'true true\n');
  });

  test('errors: branch on the code', async () => {
    assert.equal(await runExample('errors'), 'no_numbers: not charged; try another country or later\n');
  });

  test('pagination: every wallet movement, page by page', async () => {
    const output = await runExample('pagination');
    const lines = output.trim().split('\n');
    const count = Number(/^(\d+) movements$/.exec(lines.at(-1)!)?.[1]);
    assert.equal(lines.length - 1, count);
    // The top-up, and a hold with its capture or release for each purchase above.
    assert.ok(count >= 5, output);
    assert.match(lines.at(-2)!, / topup 500$/);
  });
});
