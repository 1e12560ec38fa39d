import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../src/clock.ts';
import { run } from '../../src/cli/main.ts';

/** The real `namaskah` executable, run in its own process as an operator would. */
const BIN = fileURLToPath(new URL('../../bin/namaskah.mjs', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface CommandRun {
  /** The exit code (null when the process was killed by a signal). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `namaskah <args>` from the repository root with only PATH and HOME from this process's
 * environment plus `env`; refuses to wait longer than `timeoutMs` (the process is killed).
 */
export function runNamaskah(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CommandRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out: namaskah ${args.join(' ')}\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One CLI invocation in this process (logs silent unless env says), with its output captured. */
export async function runCli(args: string[], env: Record<string, string>, clock?: Clock): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    env: { LOG_LEVEL: 'silent', ...env },
    stdout: (text) => void (stdout += text),
    stderr: (text) => void (stderr += text),
    waitForShutdown: () => new Promise(() => {}),
    clock,
  });
  return { code, stdout, stderr };
}
