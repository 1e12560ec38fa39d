#!/usr/bin/env node
// The `namaskah` command: runs dist/ (src/ compiled by `npm run build`, which npm runs after every
// install) while it was built from the sources as they are; otherwise the TypeScript sources
// through tsx. The compiled server starts faster and uses about 80 MB less memory: no compiler, no
// loader thread (docs/performance.md, "Memory").
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { sourceHash } from './source-hash.mjs';

// A smaller young generation: at hundreds of purchases a second V8's default (16 MB semi-spaces)
// let the server's resident memory pass 300 MB between collections; 4 MB kept it under 290 MB at the
// same throughput (docs/performance.md, "Memory"). An operator's own setting wins.
const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) => arg.includes('--max-semi-space-size'));
if (!given) setFlagsFromString('--max-semi-space-size=4');

function built() {
  try {
    return readFileSync(new URL('../dist/source-hash', import.meta.url), 'utf8').trim() === sourceHash(fileURLToPath(new URL('../src/', import.meta.url)));
  } catch {
    return false;
  }
}

if (built()) {
  await import('../dist/cli/entry.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/entry.ts');
}
