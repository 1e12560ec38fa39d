// `npm run build` (and npm's `prepare`, after every install): compiles src/ into dist/, which
// `namaskah` runs instead of the TypeScript sources while dist/ is built from the sources as they
// are (bin/namaskah.mjs). `--or-sources`: a failed build only warns; the command then runs the sources.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { sourceHash } from '../bin/source-hash.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const dist = new URL('../dist/', import.meta.url);
const orSources = process.argv.includes('--or-sources');

rmSync(dist, { recursive: true, force: true });
let failure;
try {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  // Types are checked by `npm run typecheck`; the build only compiles.
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--noCheck'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) failure = `tsc exited with ${result.status ?? result.signal}`;
} catch (error) {
  failure = error instanceof Error ? error.message : String(error);
}
if (failure) {
  rmSync(dist, { recursive: true, force: true });
  console.error(`build: ${failure}${orSources ? '; namaskah will run the TypeScript sources through tsx' : ''}`);
  process.exit(orSources ? 0 : 1);
}
writeFileSync(new URL('source-hash', dist), `${sourceHash(fileURLToPath(new URL('../src/', import.meta.url)))}\n`);
