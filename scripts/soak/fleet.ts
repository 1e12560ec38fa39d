import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { childEnv, cliPath, freePort, repoRoot } from '../../bench/support/server.ts';
import { sleep } from '../../bench/support/stats.ts';
import type { Random } from './random.ts';

/**
 * The processes under test, as an operator runs them on PostgreSQL: API processes
 * (`namaskah serve --no-worker`) and engine processes (`namaskah worker`), each in a slot that keeps
 * its port across restarts. The fleet kills them with SIGKILL (no shutdown code runs: leases stay
 * taken, requests in flight are cut) and starts them again. A process that exits without being
 * killed by the fleet is a finding and is counted.
 */
export type Role = 'api' | 'engine';

interface Slot {
  role: Role;
  name: string;
  port?: number;
  child?: ChildProcess;
  state: 'down' | 'starting' | 'up';
  /** Set while the fleet itself kills or stops the process. */
  expectedExit: boolean;
  log: WriteStream;
}

export interface KillEvent {
  at: string;
  role: Role;
  name: string;
  pid: number;
  /** chaos: a random kill; blackout: every engine killed for the late-SMS scenario. */
  why: 'chaos' | 'blackout';
}

export interface UnexpectedExit {
  at: string;
  name: string;
  code: number | null;
  signal: string | null;
}

const READY_TIMEOUT_MS = 120_000;

export class Fleet {
  private readonly slots: Slot[] = [];
  readonly kills: KillEvent[] = [];
  readonly unexpectedExits: UnexpectedExit[] = [];
  readonly starts = { api: 0, engine: 0 };
  /** While set, engines are neither restarted after a kill nor after an unexpected exit. */
  enginesHeld = false;
  private stopping = false;

  constructor(private readonly options: { env: Record<string, string>; apis: number; engines: number; logDir: string }) {
    mkdirSync(options.logDir, { recursive: true });
    const open = (name: string) => createWriteStream(join(options.logDir, `${name}.log`), { flags: 'a' });
    for (let i = 1; i <= options.apis; i++) this.slots.push({ role: 'api', name: `api-${i}`, state: 'down', expectedExit: false, log: open(`api-${i}`) });
    for (let i = 1; i <= options.engines; i++) this.slots.push({ role: 'engine', name: `engine-${i}`, state: 'down', expectedExit: false, log: open(`engine-${i}`) });
  }

  /** The first API process alone (it applies the migrations and creates the admin), then the rest together. */
  async start(): Promise<void> {
    const [first, ...rest] = this.slots;
    await this.launch(first!);
    await Promise.all(rest.map((slot) => this.launch(slot)));
  }

  /** Base URLs of the API processes answering now. */
  liveApis(): string[] {
    return this.slots.filter((s) => s.role === 'api' && s.state === 'up').map((s) => `http://127.0.0.1:${s.port}`);
  }

  /** An API process that answers now, waiting for one while none does. */
  async api(random: Random): Promise<string> {
    for (;;) {
      const live = this.liveApis();
      if (live.length > 0) return random.pick(live);
      if (this.stopping) throw new Error('the fleet is stopping');
      await sleep(100);
    }
  }

  running(role: Role): number {
    return this.slots.filter((s) => s.role === role && s.state === 'up').length;
  }

  /**
   * Kills one running process at random with SIGKILL and starts it again after a short pause. The
   * last API process answering is spared, so customers always have somewhere to go; engines may all
   * be down at once.
   */
  async killRandom(random: Random): Promise<KillEvent | undefined> {
    const candidates = this.slots.filter(
      (s) => s.state === 'up' && !(s.role === 'api' && this.running('api') <= 1) && !(s.role === 'engine' && this.enginesHeld),
    );
    if (candidates.length === 0) return undefined;
    const slot = random.pick(candidates);
    const event = await this.kill(slot, 'chaos');
    const pause = random.between(500, 4_000);
    void sleep(pause).then(() => this.relaunch(slot));
    return event;
  }

  /** Kills every engine and keeps them down until releaseEngines(). */
  async killEngines(): Promise<KillEvent[]> {
    this.enginesHeld = true;
    const up = this.slots.filter((s) => s.role === 'engine' && s.child && s.state !== 'down');
    return Promise.all(up.map((slot) => this.kill(slot, 'blackout')));
  }

  async releaseEngines(): Promise<void> {
    this.enginesHeld = false;
    await Promise.all(this.slots.filter((s) => s.role === 'engine' && s.state === 'down').map((slot) => this.launch(slot)));
  }

  /** Starts whatever is down (after the chaos stops, so the drain runs on a whole fleet). */
  async restoreAll(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (this.slots.some((s) => s.state === 'starting') && Date.now() < deadline) await sleep(200);
    await Promise.all(this.slots.filter((s) => s.state === 'down').map((slot) => this.launch(slot)));
  }

  /** Starts after the first one of each slot: restarts after kills and unexpected exits. */
  restarts(): number {
    return this.starts.api + this.starts.engine - this.slots.length;
  }

  /** SIGTERM to every process (a clean shutdown), SIGKILL after 15 s. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.slots.map(async (slot) => {
        const child = slot.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        slot.expectedExit = true;
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited(child);
        clearTimeout(killer);
      }),
    );
    await Promise.all(this.slots.map((slot) => new Promise<void>((resolve) => slot.log.end(() => resolve()))));
  }

  /** SIGKILL to every process at once: for an interrupted soak. */
  killAllNow(): void {
    this.stopping = true;
    for (const slot of this.slots) {
      slot.expectedExit = true;
      if (slot.child && slot.child.exitCode === null && slot.child.signalCode === null) slot.child.kill('SIGKILL');
    }
  }

  private async kill(slot: Slot, why: KillEvent['why']): Promise<KillEvent> {
    const child = slot.child!;
    slot.expectedExit = true;
    slot.state = 'down';
    const event: KillEvent = { at: new Date().toISOString(), role: slot.role, name: slot.name, pid: child.pid!, why };
    child.kill('SIGKILL');
    await exited(child);
    this.kills.push(event);
    return event;
  }

  private async relaunch(slot: Slot): Promise<void> {
    if (this.stopping || slot.state !== 'down' || (slot.role === 'engine' && this.enginesHeld)) return;
    await this.launch(slot).catch((error: unknown) => {
      slot.log.write(`[soak] restart of ${slot.name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    });
  }

  private async launch(slot: Slot): Promise<void> {
    if (slot.state !== 'down') return;
    slot.state = 'starting';
    slot.expectedExit = false;
    slot.port ??= slot.role === 'api' ? await freePort() : undefined;
    const args = slot.role === 'api' ? ['serve', '--no-worker'] : ['worker'];
    const env = childEnv({ HOST: '127.0.0.1', ...this.options.env, ...(slot.port ? { PORT: String(slot.port) } : {}) });
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    slot.child = child;
    this.starts[slot.role]++;
    slot.log.write(`[soak] ${new Date().toISOString()} start ${args.join(' ')} pid ${child.pid}\n`);
    let stderrText = '';
    child.stdout!.on('data', (chunk: Buffer) => slot.log.write(chunk));
    child.stderr!.on('data', (chunk: Buffer) => {
      slot.log.write(chunk);
      if (slot.state === 'starting') stderrText = (stderrText + chunk.toString()).slice(-4_000);
    });
    child.once('exit', (code, signal) => {
      slot.log.write(`[soak] ${new Date().toISOString()} pid ${child.pid} exited (${signal ?? code})\n`);
      if (slot.child !== child) return;
      slot.state = 'down';
      if (slot.expectedExit || this.stopping) return;
      this.unexpectedExits.push({ at: new Date().toISOString(), name: slot.name, code, signal });
      void sleep(1_000).then(() => this.relaunch(slot));
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (slot.child !== child || child.exitCode !== null || child.signalCode !== null) {
        if (slot.expectedExit) return;
        throw new Error(`${slot.name} exited while starting:\n${stderrText}`);
      }
      if (slot.role === 'engine' ? stderrText.includes(' running on ') : await answers(`http://127.0.0.1:${slot.port}/health`)) break;
      if (Date.now() > deadline) throw new Error(`${slot.name} was not ready within ${READY_TIMEOUT_MS / 1000} s:\n${stderrText}`);
      await sleep(150);
    }
    slot.state = 'up';
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await response.arrayBuffer();
    return response.status < 500 || response.status === 503;
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
