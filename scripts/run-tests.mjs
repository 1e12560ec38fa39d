#!/usr/bin/env node
// Runs every test/**/*.test.ts file (or those under the paths given) with node's test runner.
// Node 20 has no glob support in --test, hence this small walker. It also finds Chromium for the
// browser tests (test/e2e) and, at the end, says plainly what was not run and why.
import { accessSync, constants, readFileSync, readdirSync, statSync } from 'node:fs';
import { delimiter, join, sep } from 'node:path';
import { spawnSync } from 'node:child_process';

const BROWSER_TESTS = `test${sep}e2e${sep}`;
const CHROMIUM_NAMES = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'];
const CHROMIUM_PATHS = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome-stable',
  '/usr/bin/google-chrome',
  '/snap/bin/chromium',
  '/Applications/Chromium.app/Contents/MacOS/Chromium',
  '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
];
const INSTALL_CHROMIUM =
  'install Chromium (Debian/Ubuntu: sudo apt-get install chromium; macOS: brew install --cask chromium) or set CHROMIUM_PATH';

function collect(path, out) {
  const stat = statSync(path);
  if (stat.isFile()) {
    if (path.endsWith('.test.ts')) out.push(path);
    return out;
  }
  for (const entry of readdirSync(path).sort()) {
    if (entry === 'node_modules' || entry.startsWith('.')) continue;
    collect(join(path, entry), out);
  }
  return out;
}

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** CHROMIUM_PATH when set, else the first Chromium or Chrome on PATH or in the usual places. */
function findChromium(env) {
  if (env.CHROMIUM_PATH) return { path: executable(env.CHROMIUM_PATH) ? env.CHROMIUM_PATH : null, explicit: true };
  const onPath = (env.PATH ?? '').split(delimiter).filter(Boolean).flatMap((dir) => CHROMIUM_NAMES.map((name) => join(dir, name)));
  return { path: [...onPath, ...CHROMIUM_PATHS].find(executable) ?? null, explicit: false };
}

/** Files with a PostgreSQL half: they take their engines (or the URL) from test/support/db.ts. */
function runsOnPostgres(file) {
  return /import\s*\{[^}]*\b(engines|testDatabaseUrl)\b[^}]*\}\s*from\s*'[./]*support\/db\.ts'/.test(readFileSync(file, 'utf8'));
}

const args = process.argv.slice(2);
const roots = args.length > 0 ? args : ['test'];
let files = roots.flatMap((root) => collect(root, []));
if (files.length === 0) {
  console.error(`no test files under ${roots.join(', ')}`);
  process.exit(1);
}

const ci = process.env.CI === 'true';
const notRun = [];
const env = { ...process.env, NODE_ENV: 'test' };

const browserFiles = files.filter((f) => f.includes(BROWSER_TESTS));
if (browserFiles.length > 0) {
  const chromium = findChromium(process.env);
  if (chromium.path) {
    env.CHROMIUM_PATH = chromium.path;
  } else {
    const why = chromium.explicit ? `CHROMIUM_PATH=${process.env.CHROMIUM_PATH} is not an executable file` : 'no Chromium found';
    if (ci || chromium.explicit) {
      console.error(`Browser tests cannot run: ${why}; ${INSTALL_CHROMIUM}.`);
      process.exit(1);
    }
    files = files.filter((f) => !browserFiles.includes(f));
    notRun.push(`Browser tests (${browserFiles.join(', ')}) skipped: ${why}; ${INSTALL_CHROMIUM}.`);
  }
}

if (!process.env.TEST_DATABASE_URL) {
  const postgresFiles = files.filter(runsOnPostgres).length;
  if (postgresFiles > 0) {
    notRun.push(
      `PostgreSQL suite skipped: TEST_DATABASE_URL is not set, so ${postgresFiles} test file${postgresFiles === 1 ? '' : 's'} ran on PGlite only; ` +
        'run e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm test.',
    );
  }
}

let status = 0;
if (files.length > 0) {
  const concurrency = process.env.TEST_CONCURRENCY ?? '2';
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
    { stdio: 'inherit', env },
  );
  status = result.status ?? 1;
}
if (notRun.length > 0) console.log(`\nNot run:\n${notRun.map((line) => `  ${line}`).join('\n')}`);
process.exit(status);
