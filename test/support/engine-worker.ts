/**
 * A background-engine worker in its own process, for the lease tests on PostgreSQL:
 *
 *   node --import tsx test/support/engine-worker.ts '<json options>'
 *
 * It runs `ticks` engine ticks against the database (a ManualClock starting at `now`, advanced by
 * `advanceMs` after each tick) with the stateless sandbox as its upstream, so every process agrees
 * about every order. Each upstream check is reported on stdout as JSON lines with real timestamps
 * (`check-start`, `check-end`), so the parent can prove no order was checked by two workers at once.
 * In `hang` mode the first check never returns: the parent kills the process while it holds its lease.
 * In `purchase-hang` mode it starts one purchase (hold placed, verification pending) whose upstream
 * call never returns (`buy-started` is reported): the parent kills the process mid-purchase.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';
import { ManualClock } from './clock.ts';
import { LIFECYCLE_TEST_ENV } from './lifecycle.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';
import { SandboxProvider } from '../../src/providers/sandbox.ts';
import type { OrderCheck, OrderRef, Provider } from '../../src/providers/provider.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';
import { Engine } from '../../src/engine/engine.ts';
import { purchaseVerification } from '../../src/verifications/purchase.ts';

export interface WorkerOptions {
  databaseUrl: string;
  workerId: string;
  now: string;
  mode: 'ticks' | 'hang' | 'purchase-hang';
  /** purchase-hang: who buys what, with which Idempotency-Key. */
  purchase?: { userId: string; idempotencyKey: string; service: string };
  ticks?: number;
  advanceMs?: number;
  /** Real milliseconds each check takes (widens the window in which two workers could overlap). */
  checkDelayMs?: number;
  batchSize?: number;
  /** Wait for a line "go" on stdin before the first tick (lets the parent start several workers together). */
  waitForGo?: boolean;
  env?: Record<string, string>;
}

export type WorkerEvent =
  | { event: 'ready'; worker: string }
  | { event: 'buy-started'; worker: string; clientRef: string }
  | { event: 'check-start' | 'check-end'; worker: string; order: string; at: number }
  | { event: 'done'; worker: string; polled: number; expired: number; captured: number };

function emit(event: WorkerEvent): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** Wall time with sub-millisecond resolution, comparable across processes on one machine. */
function realNow(): number {
  return performance.timeOrigin + performance.now();
}

function goSignal(): Promise<void> {
  return new Promise((resolve) => {
    let buffered = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.split('\n').some((line) => line.trim() === 'go')) {
        process.stdin.pause();
        resolve();
      }
    });
  });
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as WorkerOptions;
  const config = loadConfig({ ...LIFECYCLE_TEST_ENV, ...options.env });
  const clock = new ManualClock(options.now);
  const database = await openDatabase({ databaseUrl: options.databaseUrl, poolSize: 4 });
  const sandbox = new SandboxProvider({
    clock,
    delayMs: config.SANDBOX_DELAY_MS,
    failureRate: config.SANDBOX_FAILURE_RATE,
    ttlSeconds: config.VERIFICATION_TTL_SECONDS,
  });
  const never = new Promise<never>(() => {});
  const instrumented: Provider = {
    name: sandbox.name,
    catalogue: () => sandbox.catalogue(),
    async buy(request) {
      if (options.mode !== 'purchase-hang') return sandbox.buy(request);
      emit({ event: 'buy-started', worker: options.workerId, clientRef: request.clientRef });
      return never;
    },
    lookup: (request) => sandbox.lookup(request),
    cancel: (id) => sandbox.cancel(id),
    balance: () => sandbox.balance(),
    async check(order: OrderRef): Promise<OrderCheck> {
      emit({ event: 'check-start', worker: options.workerId, order: order.providerOrderId, at: realNow() });
      if (options.mode === 'hang') await never;
      if (options.checkDelayMs) await new Promise((resolve) => setTimeout(resolve, options.checkDelayMs));
      const result = await sandbox.check(order);
      emit({ event: 'check-end', worker: options.workerId, order: order.providerOrderId, at: realNow() });
      return result;
    },
  };
  const runtime = createVerificationRuntime(
    { config, database, clock, logger: pino({ level: 'silent' }) },
    { provider: instrumented, workerId: options.workerId },
  );
  const engine = new Engine(runtime.engineDeps, { workerId: options.workerId, batchSize: options.batchSize });
  emit({ event: 'ready', worker: options.workerId });
  if (options.waitForGo) await goSignal();
  if (options.mode === 'purchase-hang') {
    await purchaseVerification(runtime.deps, options.purchase!);
    return;
  }
  const totals = { polled: 0, expired: 0, captured: 0 };
  for (let i = 0; i < (options.ticks ?? 1); i++) {
    const report = await engine.tick();
    totals.polled += report.polled;
    totals.expired += report.expired;
    totals.captured += report.captured;
    clock.advance(options.advanceMs ?? 0);
  }
  emit({ event: 'done', worker: options.workerId, ...totals });
  await database.close();
}

/** A running worker process, as the parent test sees it. */
export interface WorkerHandle {
  child: ChildProcess;
  events: WorkerEvent[];
  /** Resolves with the first event matching; rejects if the process exits first. */
  waitFor(predicate: (e: WorkerEvent) => boolean): Promise<WorkerEvent>;
  exited: Promise<number | null>;
}

/** Starts this script as a child process (the parent's test runner is not involved). */
export function spawnWorker(options: WorkerOptions): WorkerHandle {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'test' },
  });
  const events: WorkerEvent[] = [];
  const waiters: { predicate: (e: WorkerEvent) => boolean; resolve: (e: WorkerEvent) => void }[] = [];
  let buffered = '';
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += String(chunk)));
  child.stdout!.on('data', (chunk) => {
    buffered += String(chunk);
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      const event = JSON.parse(line) as WorkerEvent;
      events.push(event);
      for (const waiter of [...waiters]) {
        if (waiter.predicate(event)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(event);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    events,
    exited,
    waitFor(predicate) {
      const seen = events.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ predicate, resolve });
        void exited.then((code) => reject(new Error(`worker ${options.workerId} exited (${code}) first: ${stderr}`)));
      });
    },
  };
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
