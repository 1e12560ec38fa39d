#!/usr/bin/env -S node --max-semi-space-size=4
// The `namaskah` command: runs dist/ (src/ compiled by `npm run build`, which npm runs after every
// install) while it was built from the sources as they are; otherwise the TypeScript sources
// through tsx. The compiled server starts faster and uses about 80 MB less memory: no compiler, no
// loader thread (docs/performance.md, "Memory"). The server's V8 flag `--max-semi-space-size=4`
// (a smaller young generation) has to be given to node itself, as the first line, `npm start` and
// deploy/systemd do: V8 sizes its heap before any of this runs.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sourceHash } from './source-hash.mjs';

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
