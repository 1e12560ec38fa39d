import { cpus, loadavg, totalmem } from 'node:os';

/**
 * Small statistics for benchmark reports: medians and nearest-rank percentiles, and a sampler of
 * the machine's load average (other processes share this machine; every figure is reported with
 * the load it was measured under).
 */
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of values already sorted ascending. */
export function percentileSorted(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function percentile(values: number[], p: number): number {
  return percentileSorted([...values].sort((a, b) => a - b), p);
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export interface LoadReport {
  /** The 1-minute load average when sampling started and ended. */
  start: number;
  end: number;
  /** Median and maximum of the 1-minute load average sampled once a second. */
  median: number;
  max: number;
  samples: number;
}

/** Samples os.loadavg()[0] once a second until stopped. */
export class LoadSampler {
  private readonly values: number[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly first: number;

  constructor() {
    this.first = loadavg()[0]!;
    this.values.push(this.first);
    this.timer = setInterval(() => this.values.push(loadavg()[0]!), 1000);
    this.timer.unref();
  }

  stop(): LoadReport {
    clearInterval(this.timer);
    const end = loadavg()[0]!;
    this.values.push(end);
    return {
      start: round(this.first, 2),
      end: round(end, 2),
      median: round(median(this.values), 2),
      max: round(Math.max(...this.values), 2),
      samples: this.values.length,
    };
  }
}

/** Runs fn while sampling the load average. */
export async function withLoad<T>(fn: () => Promise<T>): Promise<{ value: T; load: LoadReport }> {
  const sampler = new LoadSampler();
  try {
    const value = await fn();
    return { value, load: sampler.stop() };
  } catch (error) {
    sampler.stop();
    throw error;
  }
}

export function machine(): { cpu: string; cores: number; memory_gib: number; node: string; platform: string } {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memory_gib: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

export function formatLoad(load: LoadReport): string {
  return `${load.median} (${load.start} → ${load.end}, max ${load.max})`;
}

/** A Markdown table. */
export function table(header: string[], rowsOf: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.map(String).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rowsOf.map(line)].join('\n');
}

export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
  return Math.floor(n);
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
