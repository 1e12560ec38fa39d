import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BenchReport } from './report.ts';
import { pgbenchVersion, serverVersion } from './support/postgres.ts';
import { log, machine, round } from './support/stats.ts';

/**
 * `npm run bench` runs every benchmark; `npm run bench -- <name> [<name> …]` runs some. Each
 * prints its Markdown section to stdout and writes its raw figures to bench/results/<name>.json.
 * Benchmarks measure medians over rounds, against a baseline measured in the same run, and report
 * the machine's load average: never a timed assertion in the test suite (docs/architecture.md, "Performance targets").
 *
 * Knobs (environment; defaults keep each benchmark to a few minutes on a 2-core machine):
 *   BENCH_ROUNDS (3), BENCH_SECONDS (15), BENCH_CONCURRENCY (32), BENCH_CUSTOMERS (200),
 *   BENCH_PGLITE_ROUNDS (= rounds; 0 skips PGlite), BENCH_PURCHASE_API_ONLY (1; 0 skips the serve --no-worker window);
 *   BENCH_DEADLINE_VERIFICATIONS (2000; the target's figure is 10000), BENCH_DEADLINE_ROUNDS,
 *   BENCH_DEADLINE_WORKERS (1), BENCH_DEADLINE_ENGINE (postgres | pglite); BENCH_VERIFICATIONS (ops: 200000; the target's figure is 1000000),
 *   BENCH_KEEP_DATABASE (ops: 1 keeps the data); BENCH_PG_URL (admin connection, default
 *   postgres://postgres@127.0.0.1:5432/test), BENCH_PG_DATABASE (scratch database, namaskah_bench);
 *   BENCH_SERVER_NODE_ARGS (extra node flags for the server child, e.g. --cpu-prof);
 *   BENCH_RESULTS_DIR (where the JSON goes; default bench/results).
 */
const benchmarks: Record<string, () => Promise<BenchReport>> = {
  purchase: async () => (await import('./purchase.ts')).benchPurchase(),
  deadline: async () => (await import('./deadline.ts')).benchDeadline(),
  ops: async () => (await import('./ops.ts')).benchOps(),
};

// BENCH_RESULTS_DIR sends the raw figures elsewhere (e.g. for a quick trial run at a small scale).
const resultsDir = process.env.BENCH_RESULTS_DIR ? `${process.env.BENCH_RESULTS_DIR.replace(/\/$/, '')}/` : fileURLToPath(new URL('./results/', import.meta.url));

async function main(): Promise<number> {
  const args = process.argv.slice(2).filter((a) => a !== '--');
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: npm run bench [-- ${Object.keys(benchmarks).join('|')} ...]\n`);
    return 0;
  }
  const unknown = args.filter((a) => !(a in benchmarks));
  if (unknown.length) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(benchmarks).join(', ')}\n`);
    return 2;
  }
  const selected = args.length ? args : Object.keys(benchmarks);

  const host = machine();
  const environment = {
    ...host,
    postgres: await serverVersion().catch((e: Error) => `unavailable (${e.message})`),
    pgbench: await pgbenchVersion().catch((e: Error) => `unavailable (${e.message})`),
    load_at_start: loadavg().map((l) => round(l, 2)),
    started_at: new Date().toISOString(),
  };
  process.stdout.write(
    `## Benchmark run ${environment.started_at}\n\n` +
      `Machine: ${host.cpu}, ${host.cores} cores, ${host.memory_gib} GiB; Node ${host.node}; PostgreSQL ${environment.postgres}; ${environment.pgbench}. ` +
      `Load average at start (1/5/15 min): ${environment.load_at_start.join(' / ')}.\n\n`,
  );

  mkdirSync(resultsDir, { recursive: true });
  const reports: BenchReport[] = [];
  let failed = false;
  for (const name of selected) {
    const started = performance.now();
    log(`${name}: starting`);
    try {
      const report = await benchmarks[name]!();
      const wall = round((performance.now() - started) / 1000, 1);
      reports.push(report);
      process.stdout.write(`${report.markdown}\nWall time of this benchmark: ${wall} s.\n\n`);
      writeFileSync(
        `${resultsDir}${name}.json`,
        `${JSON.stringify({ environment, wall_seconds: wall, load_at_end: loadavg().map((l) => round(l, 2)), ...report }, null, 2)}\n`,
      );
      log(`${name}: done in ${wall} s`);
    } catch (error) {
      failed = true;
      process.stderr.write(`benchmark ${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
  }
  process.stdout.write(`### Summary\n\n${reports.map((r) => `- ${r.ok ? 'met' : 'MISSED'} — ${r.summary}`).join('\n')}\n`);
  process.stdout.write(`\nLoad average at end (1/5/15 min): ${loadavg().map((l) => round(l, 2)).join(' / ')}.\n`);
  // A missed target is a finding, not a failure of the tool; only a benchmark that could not run fails.
  return failed ? 1 : 0;
}

const code = await main();
process.exitCode = code;
setTimeout(() => process.exit(code), 1000).unref();
