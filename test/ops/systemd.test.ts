import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config.ts';
import { findTool } from '../support/tools.ts';

/**
 * The systemd units shipped in deploy/systemd (docs/operations.md, "First deployment"): one per way
 * of running (`serve`, `serve --no-worker`, `worker`), each as a non-root user with the environment
 * file, a restart policy and SIGTERM for a graceful stop; accepted by `systemd-analyze verify`.
 */

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const UNITS = join(REPO, 'deploy/systemd');

const units = [
  { file: 'namaskah.service', instance: 'namaskah.service', command: 'serve' },
  { file: 'namaskah-api@.service', instance: 'namaskah-api@3000.service', command: 'serve --no-worker' },
  { file: 'namaskah-worker@.service', instance: 'namaskah-worker@1.service', command: 'worker' },
];

function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) out.set(match[1]!, [...(out.get(match[1]!) ?? []), match[2]!]);
  }
  return out;
}

function envFile(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(join(UNITS, 'namaskah.env'), 'utf8').split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

describe('systemd units', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'namaskah-units-'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  for (const unit of units) {
    test(`${unit.file}: runs \`namaskah ${unit.command}\` as a non-root user, with the environment file, restarts and a graceful stop`, () => {
      const d = directives(readFileSync(join(UNITS, unit.file), 'utf8'));
      assert.deepEqual(d.get('ExecStart'), [`/usr/bin/node --max-semi-space-size=4 /opt/namaskah/bin/namaskah.mjs ${unit.command}`]);
      assert.deepEqual(d.get('User'), ['namaskah']);
      assert.deepEqual(d.get('EnvironmentFile'), ['/etc/namaskah/namaskah.env']);
      assert.deepEqual(d.get('Restart'), ['on-failure']);
      assert.deepEqual(d.get('KillSignal'), ['SIGTERM']);
      assert.deepEqual(d.get('KillMode'), ['mixed']);
      assert.deepEqual(d.get('NoNewPrivileges'), ['yes']);
      assert.ok(Number(d.get('TimeoutStopSec')?.[0]) * 1000 > loadConfig({}).PROVIDER_TIMEOUT_MS * 2, 'the stop timeout outlasts a request in flight');
    });
  }

  test('the environment file sets only configuration the server knows, and is valid as it ships', () => {
    const known = new Set(
      readFileSync(join(REPO, '.env.example'), 'utf8')
        .split('\n')
        .map((line) => /^([A-Z_][A-Z0-9_]*)=/.exec(line)?.[1])
        .filter(Boolean),
    );
    const env = envFile();
    assert.deepEqual(Object.keys(env).filter((key) => !known.has(key)), []);
    const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
    assert.doesNotThrow(() => loadConfig(set));
  });

  test('systemd-analyze verify accepts every unit', (t) => {
    const analyze = findTool('systemd-analyze', 'apt-get install systemd');
    if (!analyze.path) return t.skip(analyze.why);
    const tool: string = analyze.path;
    // Installed paths pointed at this checkout, so verify can check the command and files exist.
    const envPath = join(scratch, 'namaskah.env');
    writeFileSync(envPath, readFileSync(join(UNITS, 'namaskah.env')));
    for (const unit of units) {
      const text = readFileSync(join(UNITS, unit.file), 'utf8')
        .replaceAll('/etc/namaskah/namaskah.env', envPath)
        .replaceAll('/usr/bin/node', process.execPath)
        .replaceAll('/opt/namaskah', REPO.replace(/\/$/, ''));
      const path = join(scratch, unit.instance);
      writeFileSync(path, text);
      const result = spawnSync(tool, ['verify', path], { encoding: 'utf8' });
      const about = `${result.stdout}${result.stderr}`.split('\n').filter((line) => line.includes(unit.instance) || line.includes(scratch));
      assert.equal(result.status, 0, `${unit.file}:\n${result.stdout}${result.stderr}`);
      assert.deepEqual(about, [], `${unit.file}: systemd-analyze has remarks`);
    }
  });
});
