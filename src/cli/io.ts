import type { Clock } from '../clock.ts';

/** What a CLI run may touch: injected so tests run commands in-process and capture the output. */
export interface CliIo {
  env: Record<string, string | undefined>;
  stdout(text: string): void;
  stderr(text: string): void;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM); `serve` runs until then. */
  waitForShutdown(): Promise<string>;
  clock?: Clock;
}
