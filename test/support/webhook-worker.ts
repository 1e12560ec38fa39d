/**
 * A background engine delivering customers' webhooks in its own process, for the multi-worker test
 * on PostgreSQL:
 *
 *   node --import tsx test/support/webhook-worker.ts '<json options>'
 *
 * It waits for "go" on stdin, then makes `passes` delivery passes (a ManualClock starting at `now`,
 * advanced by `advanceMs` after each) and reports `{event: 'done', attempts}` on stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';
import { ManualClock } from './clock.ts';
import { LIFECYCLE_TEST_ENV } from './lifecycle.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';
import { Engine } from '../../src/engine/engine.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';

export interface WebhookWorkerOptions {
  databaseUrl: string;
  workerId: string;
  now: string;
  passes: number;
  advanceMs: number;
  batchSize: number;
  env?: Record<string, string>;
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as WebhookWorkerOptions;
  const config = loadConfig({ ...LIFECYCLE_TEST_ENV, ...options.env });
  const clock = new ManualClock(options.now);
  const database = await openDatabase({ databaseUrl: options.databaseUrl, poolSize: 4 });
  const runtime = createVerificationRuntime({ config, database, clock, logger: pino({ level: 'silent' }) }, { workerId: options.workerId });
  const engine = new Engine(runtime.engineDeps, { workerId: options.workerId, batchSize: options.batchSize });
  process.stdout.write(`${JSON.stringify({ event: 'ready' })}\n`);
  await new Promise<void>((resolve) => {
    let buffered = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.includes('go\n')) {
        process.stdin.pause();
        resolve();
      }
    });
  });
  let attempts = 0;
  for (let i = 0; i < options.passes; i++) {
    attempts += await engine.deliverWebhooks();
    clock.advance(options.advanceMs);
  }
  process.stdout.write(`${JSON.stringify({ event: 'done', attempts })}\n`);
  await database.close();
}

export interface WebhookWorkerHandle {
  child: ChildProcess;
  ready: Promise<void>;
  /** Resolves with the attempts the worker made, when it exits cleanly. */
  done: Promise<number>;
}

export function spawnWebhookWorker(options: WebhookWorkerOptions): WebhookWorkerHandle {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'test' },
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += String(chunk)));
  let markReady: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout!.on('data', (chunk) => {
    stdout += String(chunk);
    if (stdout.includes('"ready"')) markReady();
  });
  const done = new Promise<number>((resolve, reject) =>
    child.on('exit', (code) => {
      const line = stdout.split('\n').find((l) => l.includes('"done"'));
      if (code === 0 && line) resolve((JSON.parse(line) as { attempts: number }).attempts);
      else reject(new Error(`webhook worker ${options.workerId} exited ${code}: ${stderr}`));
    }),
  );
  return { child, ready, done };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
