import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const DESCRIPTION = 'Namaskah: temporary numbers for one-time codes, paid from a prepaid wallet';

// `namaskah` runs the compiled dist/ only while it was built from the sources as they are; a build
// older than the sources, or a failed one, leaves the command running the sources themselves.
describe('namaskah runs its build only when the build is of these sources', () => {
  let copy: string;
  const run = (command: string, args: string[]) => spawnSync(process.execPath, [command, ...args], { cwd: copy, encoding: 'utf8', timeout: 120_000 });
  const help = () => {
    const result = run('bin/namaskah.mjs', ['--help']);
    assert.equal(result.status, 0, result.stderr);
    return result.stdout;
  };
  const edit = (path: string, from: string, to: string) => {
    const file = join(copy, path);
    const text = readFileSync(file, 'utf8');
    assert.ok(text.includes(from), `${path} holds ${from}`);
    writeFileSync(file, text.replace(from, to));
  };

  before(() => {
    copy = mkdtempSync(join(tmpdir(), 'namaskah-build-'));
    for (const path of ['bin', 'src', 'scripts/build.mjs', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) cpSync(join(repo, path), join(copy, path), { recursive: true });
    symlinkSync(join(repo, 'node_modules'), join(copy, 'node_modules'), 'dir');
  });
  after(() => rmSync(copy, { recursive: true, force: true }));

  test('after a build the command runs dist/; once a source changes, the source', () => {
    const build = run('scripts/build.mjs', []);
    assert.equal(build.status, 0, build.stderr);
    assert.ok(existsSync(join(copy, 'dist', 'cli', 'entry.js')));
    // The same text changed in the compiled file only shows which of the two the command ran.
    edit('dist/cli/main.js', DESCRIPTION, 'Ran the build');
    assert.match(help(), /Ran the build/);

    edit('src/cli/main.ts', DESCRIPTION, 'Ran the sources');
    const output = help();
    assert.match(output, /Ran the sources/);
    assert.doesNotMatch(output, /Ran the build/);
  });

  test('a failed build leaves no dist/: `npm run build` fails, the install\'s build only warns, the command runs the sources', () => {
    writeFileSync(join(copy, 'src', 'unfinished.ts'), 'export const broken = (;\n');
    const strict = run('scripts/build.mjs', []);
    assert.equal(strict.status, 1);
    assert.match(strict.stderr, /build: tsc exited/);
    assert.equal(existsSync(join(copy, 'dist')), false);

    const lenient = run('scripts/build.mjs', ['--or-sources']);
    assert.equal(lenient.status, 0);
    assert.match(lenient.stderr, /will run the TypeScript sources/);
    assert.equal(existsSync(join(copy, 'dist')), false);
    assert.match(help(), /Ran the sources/);
  });
});
