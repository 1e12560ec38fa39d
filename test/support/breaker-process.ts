/**
 * A process that trips one provider's breaker, for the shared-breaker test on PostgreSQL:
 *
 *   node --import tsx test/support/breaker-process.ts '<json options>'
 *
 * It starts a runtime over the database with one scripted upstream `name` that is down (every call
 * an ambiguous timeout), calls it until its breaker opens, and reports the calls that reached the
 * upstream as one JSON line on stdout ({ opened, upstreamCalls }).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';
import { ManualClock } from './clock.ts';
import { LIFECYCLE_TEST_ENV } from './lifecycle.ts';
import { ScriptedProvider } from './scripted-provider.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';
import { createVerificationRuntime } from '../../src/runtime.ts';

export interface BreakerProcessOptions {
  databaseUrl: string;
  name: string;
  env?: Record<string, string>;
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as BreakerProcessOptions;
  const config = loadConfig({ ...LIFECYCLE_TEST_ENV, ...options.env });
  const clock = new ManualClock('2026-03-01T12:00:00Z');
  const database = await openDatabase({ databaseUrl: options.databaseUrl, poolSize: 2 });
  const upstream = new ScriptedProvider(options.name);
  upstream.failAll('ambiguous', 'timeout');
  const runtime = createVerificationRuntime({ config, database, clock, logger: pino({ level: 'silent' }) }, { provider: upstream, workerId: 'breaker-process' });
  const provider = runtime.providers.get(options.name);
  const breaker = runtime.providers.breaker(options.name);
  const ref = { providerOrderId: 'x', phoneNumber: '1555', since: clock.now() };
  for (let i = 0; i < config.BREAKER_FAILURE_THRESHOLD * 2 && breaker.state() !== 'open'; i++) await provider.check(ref).catch(() => undefined);
  // The state is written when the breaker opens, without holding up the call that opened it: wait for it.
  for (let i = 0; i < 100; i++) {
    const found = await database.db.execute(`SELECT state FROM provider_breakers WHERE provider = '${options.name}'`);
    if ((found as unknown as { rows: { state: string }[] }).rows[0]?.state === 'open') break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  process.stdout.write(`${JSON.stringify({ opened: breaker.state() === 'open', upstreamCalls: upstream.calls.check })}\n`);
  await database.close();
}

/** Runs the process to its end; resolves with its report. */
export function tripBreakerInAnotherProcess(options: BreakerProcessOptions): Promise<{ opened: boolean; upstreamCalls: number }> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk) => (out += String(chunk)));
  child.stderr.on('data', (chunk) => (err += String(chunk)));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`breaker process exited ${code}: ${err}`)))),
  );
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
