/** What each benchmark hands back to bench/run.ts. */
export interface BenchReport {
  name: string;
  /** Whether the performance target (docs/architecture.md) was met in this run. */
  ok: boolean;
  /** One line for the final summary. */
  summary: string;
  /** The benchmark's section of the report (method, tables, verdict). */
  markdown: string;
  /** Raw figures, written to bench/results/<name>.json. */
  data: unknown;
}
