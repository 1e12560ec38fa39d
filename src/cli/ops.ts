import { InvalidArgumentError, type Command } from 'commander';
import cliProgress from 'cli-progress';
import { sql } from 'drizzle-orm';
import { readOpsToken } from '../accounts/ops-token.ts';
import { systemClock, type Clock } from '../clock.ts';
import { loadConfig, type Config } from '../config.ts';
import type { AppContext } from '../context.ts';
import { DataDirLockedError } from '../db/lock.ts';
import { CREDENTIAL_TABLES } from '../accounts/schema.ts';
import { createLogger, scrubSecrets } from '../logging.ts';
import { formatDiagnose, formatReconcile } from '../ops/format.ts';
import type { DiagnoseReport, ReconcileReport } from '../ops/reports.ts';
import type { OpenedDatabase } from '../server.ts';
import { CommandFailure, UsageError } from './errors.ts';
import type { CliIo } from './io.ts';

/**
 * `namaskah reconcile` and `namaskah diagnose` (docs/operations.md). They work whether or not a server runs:
 *
 *   - PostgreSQL (DATABASE_URL): they open the database directly, beside any running processes;
 *   - embedded, data directory locked by a running server: they ask that server over HTTP (the URL
 *     is in the lock file, the local operator token in DATA_DIR/ops-token);
 *   - embedded, no server: they open the data directory themselves (taking its lock).
 *
 * Exit codes (through `run` in main.ts): 0 nothing wrong / nothing left to repair; 1 an invariant
 * fails (diagnose), problems remain (reconcile), or the tool could not run; 2 usage error. The
 * report goes to stdout, the one-line reason for a non-zero exit to stderr. Output never contains
 * a connection string, password or token.
 */
type Access =
  | { kind: 'direct'; opened: OpenedDatabase; config: Config }
  | { kind: 'http'; url: string; token: string; config: Config };

/** The innermost cause's message (a failed query's own message repeats the SQL, the cause says why). */
function message(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 5; depth++) {
    const cause = (current as { cause?: unknown } | undefined)?.cause;
    if (!(cause instanceof Error) || !cause.message) break;
    current = cause;
  }
  return scrubSecrets(current instanceof Error ? current.message : String(current));
}

/** Opens the database, or finds the running embedded server that holds it. */
async function access(config: Config, clock: Clock): Promise<Access> {
  // Loaded on use: a usage error or --help should not wait for the whole server to load.
  const { embeddedDataDir, openConfiguredDatabase } = await import('../server.ts');
  try {
    const opened = await openConfiguredDatabase(config, clock.now());
    try {
      // A pool connects lazily: make an unreachable database fail here, as "cannot open".
      await opened.database.db.execute(sql`SELECT 1`);
    } catch (error) {
      // The failed query is what the operator needs to see, not a failure to close after it.
      await opened.close().catch(() => {});
      throw error;
    }
    return { kind: 'direct', opened, config };
  } catch (error) {
    if (!(error instanceof DataDirLockedError)) throw new CommandFailure(`cannot open the database: ${message(error)}`);
    const token = readOpsToken(embeddedDataDir(config));
    if (!error.owner.url || !token) {
      throw new CommandFailure(
        `the data directory is in use by process ${error.owner.pid}, which does not answer over HTTP yet; retry when the server has started`,
      );
    }
    return { kind: 'http', url: error.owner.url, token, config };
  }
}

async function callServer<T>(target: { url: string; token: string }, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(new URL(path, target.url), {
      method,
      headers: { authorization: `Bearer ${target.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new CommandFailure(`the running server at ${target.url} did not answer: ${message(error)}`);
  }
  const text = await response.text();
  if (!response.ok) {
    let detail = text.slice(0, 500);
    try {
      const parsed = JSON.parse(text) as { detail?: string; code?: string };
      if (parsed.detail) detail = `${parsed.code ?? response.status}: ${parsed.detail}`;
    } catch {
      // not JSON: keep the text
    }
    throw new CommandFailure(`the running server at ${target.url} answered ${response.status}: ${scrubSecrets(detail)}`);
  }
  return JSON.parse(text) as T;
}

function toolLogger(config: Config) {
  // Reports go to stdout; the tool's own log lines (warnings from upstream calls) to stderr.
  const quiet = ['error', 'fatal', 'silent'].includes(config.LOG_LEVEL);
  return createLogger({ LOG_LEVEL: quiet ? config.LOG_LEVEL : 'warn', LOG_FILE: config.LOG_FILE }, { destination: process.stderr, credentialTables: CREDENTIAL_TABLES });
}

async function hasSchema(opened: OpenedDatabase): Promise<boolean> {
  const result = (await opened.database.db.execute(sql`SELECT to_regclass('verifications') IS NOT NULL AS present`)) as unknown as {
    rows: { present: boolean }[];
  };
  return Boolean(result.rows[0]?.present);
}

function parseDays(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 3650) {
    throw new InvalidArgumentError('a whole number of days from 1 to 3650');
  }
  return Number(value);
}

/** A progress bar on stderr, only when stderr is a terminal (never in pipes, logs or tests). */
function progressBar() {
  const stream = process.stderr;
  if (!stream.isTTY) return undefined;
  const bar = new cliProgress.SingleBar(
    { stream, clearOnComplete: true, hideCursor: true, format: 'reconcile [{bar}] {value}/{total} {percentage}%' },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done: number, total: number) {
      if (!started) {
        bar.start(total, done);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done);
      }
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function registerOpsCommands(program: Command, io: CliIo): void {
  const clock = io.clock ?? systemClock;
  const configOf = () => loadConfig(io.env);

  program
    .command('reconcile')
    .description('find money problems of the last N days and (with --execute) repair them through the settlement code')
    .requiredOption('--days <n>', 'look at verifications created in the last N days (1-3650)', parseDays)
    .option('--dry-run', 'list the problems, change nothing')
    .option('--execute', 'repair what can be repaired (every repair audited as the reconciler)')
    .option('--user <email>', "only this customer's verifications")
    .option('--json', 'print the report as JSON')
    .action(async (opts: { days: number; dryRun?: boolean; execute?: boolean; user?: string; json?: boolean }) => {
      if (Boolean(opts.dryRun) === Boolean(opts.execute)) throw new UsageError('give exactly one of --dry-run or --execute');
      const config = configOf();
      const execute = Boolean(opts.execute);
      const target = await access(config, clock);
      let report: ReconcileReport;
      if (target.kind === 'http') {
        report = await callServer<ReconcileReport>(target, 'POST', '/v1/admin/reconcile', {
          days: opts.days,
          execute,
          ...(opts.user ? { user: opts.user } : {}),
        });
      } else {
        const { opened } = target;
        const bar = progressBar();
        try {
          const { prepareDatabase } = await import('../server.ts');
          const { createVerificationRuntime } = await import('../runtime.ts');
          const { reconcile, recordReconcileRun } = await import('../ops/reconcile.ts');
          const { createPaymentProcessors } = await import('../payments/registry.ts');
          await prepareDatabase(opened.database, config, clock.now());
          const ctx: AppContext = { config, database: opened.database, clock, logger: toolLogger(config) };
          const runtime = createVerificationRuntime(ctx, { workerId: 'reconcile' });
          report = await reconcile(runtime.deps, {
            days: opts.days,
            execute,
            userEmail: opts.user,
            payments: { database: opened.database, clock, config, processors: createPaymentProcessors(config), logger: ctx.logger },
            onProgress: bar ? (done, total) => bar.update(done, total) : undefined,
          });
          bar?.stop();
          await recordReconcileRun(opened.database.db, report, { actorId: null, actor: 'cli' }, clock.now());
        } finally {
          bar?.stop();
          await opened.close();
        }
      }
      io.stdout(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReconcile(report, config.CURRENCY));
      if (report.remaining > 0) {
        throw new CommandFailure(
          execute
            ? `${plural(report.remaining, 'problem')} remain after the repairs`
            : `${plural(report.remaining, 'problem')} found (nothing was changed: run with --execute to repair)`,
        );
      }
    });

  program
    .command('diagnose')
    .description('read-only: prove the ledger and lifecycle invariants; report rates, breakers, engine lag, late SMS')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }) => {
      const config = configOf();
      const target = await access(config, clock);
      let report: DiagnoseReport;
      if (target.kind === 'http') {
        report = await callServer<DiagnoseReport>(target, 'GET', '/v1/admin/diagnose');
      } else {
        const { opened } = target;
        try {
          if (!(await hasSchema(opened))) {
            throw new CommandFailure('the database has no Namaskah schema yet: start the server or run `namaskah migrate` first');
          }
          const { diagnose } = await import('../ops/diagnose.ts');
          report = await diagnose({ database: opened.database, clock, config });
        } finally {
          await opened.close();
        }
      }
      io.stdout(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatDiagnose(report, config.CURRENCY));
      if (!report.ok) {
        const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
        throw new CommandFailure(`${plural(failed.length, 'invariant check')} failed: ${failed.join(', ')}`);
      }
    });
}
