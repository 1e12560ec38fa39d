import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './stats.ts';

/**
 * Runs `node bin/namaskah.mjs <command>` as a child process, as an operator would: the server gets
 * its own process (and event loop), separate from the load generator in the benchmark process.
 */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const cliPath = fileURLToPath(new URL('../../bin/namaskah.mjs', import.meta.url));
/** node's flags for the server, as in package.json's `start` and deploy/systemd's units. */
const SERVE_NODE_FLAGS = ['--max-semi-space-size=4'];

/** Environment for a child: the parent's, minus every Namaskah setting, plus the given ones. */
export function childEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of ['DATABASE_URL', 'DATA_DIR', 'PORT', 'HOST', 'PROVIDER', 'LOG_LEVEL', 'LOG_FILE']) delete env[key];
  return { ...env, ...settings };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ChildServer {
  url: string;
  pid: number;
  /** The highest RSS of the server process seen since it started (MB), sampled every 200 ms. */
  peakRssMb(): number | null;
  /** SIGTERM, then SIGKILL after 15 s; resolves when the process has exited. */
  stop(): Promise<void>;
  output(): string;
}

function keepTail(buffer: { text: string }, chunk: Buffer): void {
  buffer.text = (buffer.text + chunk.toString()).slice(-20_000);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts `namaskah serve` (args e.g. ['--no-worker']) and waits until GET /health answers. `root`:
 * another checkout to run instead of this one (a baseline measured in the same run).
 */
export async function startChildServer(settings: Record<string, string>, args: string[] = [], root?: string): Promise<ChildServer> {
  const port = settings.PORT && settings.PORT !== '0' ? Number(settings.PORT) : await freePort();
  const env = childEnv({ HOST: '127.0.0.1', ...settings, PORT: String(port) });
  // BENCH_SERVER_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to profile the server under
  // load. The server runs with node's flags as `npm start` and deploy/systemd give them.
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const nodeArgs = [...SERVE_NODE_FLAGS.filter((flag) => !extra.some((arg) => arg.startsWith(flag.split('=')[0]!))), ...extra];
  const cli = root ? join(root, 'bin', 'namaskah.mjs') : cliPath;
  const child = spawn(process.execPath, [...nodeArgs, cli, 'serve', ...args], { cwd: root ?? repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const buffer = { text: '' };
  child.stdout!.on('data', (chunk: Buffer) => keepTail(buffer, chunk));
  child.stderr!.on('data', (chunk: Buffer) => keepTail(buffer, chunk));
  const url = `http://127.0.0.1:${port}`;
  const rss = watchRss(child.pid!);
  const stop = async () => {
    rss.stop();
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited(child);
    clearTimeout(killer);
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) rss.stop();
    if (child.exitCode !== null) throw new Error(`namaskah serve exited with ${child.exitCode}:\n${buffer.text}`);
    try {
      const response = await fetch(`${url}/health`);
      await response.arrayBuffer();
      if (response.status < 500 || response.status === 503) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`namaskah serve did not answer within 120 s:\n${buffer.text}`);
    }
    await sleep(200);
  }
  return { url, pid: child.pid!, peakRssMb: () => rss.peakMb(), stop, output: () => buffer.text };
}

/** Runs `node bin/namaskah.mjs ...args` to completion; returns its wall time, exit code and output. */
export async function runCli(
  args: string[],
  settings: Record<string, string>,
): Promise<{ ms: number; code: number | null; stdout: string; stderr: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, [cliPath, ...args], { cwd: repoRoot, env: childEnv(settings), stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  });
  return { ms: performance.now() - started, code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

/** CPU time (user + system, ms) a process has used so far; undefined where /proc is not available. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / 100;
  } catch {
    return undefined;
  }
}

/** Resident set size of a process now (MB); undefined where /proc is not available. */
export function processRssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** Samples a process's RSS every `everyMs` until stopped; the peak seen (MB). */
export function watchRss(pid: number, everyMs = 200): { peakMb(): number | null; stop(): number | null } {
  let peak: number | null = null;
  const sample = () => {
    const mb = processRssMb(pid);
    if (mb !== undefined && (peak === null || mb > peak)) peak = mb;
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    peakMb: () => peak,
    stop: () => {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}
