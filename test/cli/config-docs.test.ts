import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configSchema } from '../../src/config.ts';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

test('.env.example and docs/configuration.md list every configuration variable', () => {
  const example = read('.env.example');
  const docs = read('docs/configuration.md');
  for (const name of Object.keys(configSchema.shape)) {
    assert.match(example, new RegExp(`^${name}=`, 'm'), `${name} in .env.example`);
    assert.ok(docs.includes(`\`${name}\``), `${name} in docs/configuration.md`);
  }
});

test('.env.example shows the real defaults', () => {
  const defaults = configSchema.parse({});
  for (const line of read('.env.example').split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line);
    if (!match) continue;
    const [, name, value] = match;
    const expected = defaults[name as keyof typeof defaults];
    assert.equal(value, expected === undefined ? '' : String(expected), name);
  }
});
