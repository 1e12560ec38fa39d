import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

/**
 * The PostgreSQL side of the benchmarks: a scratch database created for the run and dropped after
 * it, and pgbench (TPC-B) as the in-run baseline on the same server.
 */
export const adminUrl = process.env.BENCH_PG_URL || 'postgres://postgres@127.0.0.1:5432/test';
export const scratchName = process.env.BENCH_PG_DATABASE || 'namaskah_bench';

export function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Drops (if left over from an interrupted run) and creates the scratch database; returns its URL. */
export async function createScratch(name = scratchName): Promise<string> {
  await admin(async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  });
  return withDatabase(adminUrl, name);
}

export async function dropScratch(name = scratchName): Promise<void> {
  await admin((client) => client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`));
}

export async function serverVersion(): Promise<string> {
  return admin(async (client) => {
    const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return rows[0]!.v;
  });
}

/** Runs fn with one plain connection to url. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export function pgbenchPath(): string {
  if (process.env.PGBENCH) return process.env.PGBENCH;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(`${dir}/pgbench`)) return `${dir}/pgbench`;
  }
  const fallback = '/usr/lib/postgresql/15/bin/pgbench';
  if (existsSync(fallback)) return fallback;
  throw new Error('pgbench not found: install the PostgreSQL client tools or set PGBENCH');
}

function connectionArgs(url: string): string[] {
  const u = new URL(url);
  const args = ['-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres')];
  return [...args, u.pathname.slice(1)];
}

function connectionEnv(url: string): NodeJS.ProcessEnv {
  const u = new URL(url);
  return u.password ? { ...process.env, PGPASSWORD: decodeURIComponent(u.password) } : process.env;
}

export async function pgbenchVersion(): Promise<string> {
  const { stdout } = await run(pgbenchPath(), ['--version']);
  return stdout.trim();
}

/** `pgbench -i -s scale` into the database at url (its pgbench_* tables only). */
export async function pgbenchInit(url: string, scale: number): Promise<void> {
  await run(pgbenchPath(), ['-i', '-q', '-s', String(scale), ...connectionArgs(url)], { env: connectionEnv(url), maxBuffer: 16 << 20 });
}

export interface PgbenchResult {
  tps: number;
  transactions: number;
  latency_ms: number | null;
}

/** `pgbench -c clients -j threads -T seconds` (TPC-B-like); returns tps without connection time. */
export async function pgbenchRun(url: string, options: { clients: number; threads: number; seconds: number }): Promise<PgbenchResult> {
  const { stdout } = await run(
    pgbenchPath(),
    ['-c', String(options.clients), '-j', String(options.threads), '-T', String(options.seconds), ...connectionArgs(url)],
    { env: connectionEnv(url), maxBuffer: 16 << 20 },
  );
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!tps) throw new Error(`could not read pgbench's tps from:\n${stdout}`);
  const processed = /number of transactions actually processed: (\d+)/.exec(stdout);
  const latency = /latency average = ([\d.]+) ms/.exec(stdout);
  return {
    tps: Number(tps[1]),
    transactions: processed ? Number(processed[1]) : 0,
    latency_ms: latency ? Number(latency[1]) : null,
  };
}
