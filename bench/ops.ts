import { systemClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import type { AppContext } from '../src/context.ts';
import { openDatabase } from '../src/db/database.ts';
import { createLogger } from '../src/logging.ts';
import { diagnose } from '../src/ops/diagnose.ts';
import type { DiagnoseReport, ReconcileReport } from '../src/ops/reports.ts';
import { checkLedgerInvariants } from '../src/ops/invariants.ts';
import { checkLifecycleInvariants } from '../src/ops/lifecycle-checks.ts';
import { reconcile } from '../src/ops/reconcile.ts';
import { prepareDatabase } from '../src/server.ts';
import { createVerificationRuntime } from '../src/runtime.ts';
import type { BenchReport } from './report.ts';
import { createScratch, dropScratch, withClient } from './support/postgres.ts';
import { runCli } from './support/server.ts';
import { envInt, formatLoad, log, median, round, table, withLoad, type LoadReport } from './support/stats.ts';

/**
 * ops — `reconcile --dry-run` and `diagnose` over 1,000,000 verifications on PostgreSQL (target,
 * docs/architecture.md "Performance targets": seconds, not minutes). The data is made with set-based INSERT … SELECT generate_series,
 * consistent with the ledger's rules: every verification has one hold of its price on its owner's
 * wallet, terminal ones are resolved as their state says (received → posted with one charge,
 * expired → expired, cancelled/failed → voided), waiting ones are recent and unresolved. The
 * ledger's per-row triggers are switched off for the load (session_replication_role = replica) and
 * the cached balances are then set from the journal with one UPDATE, so every ledger invariant
 * holds. A few hundred problems are injected, and both tools must find exactly those.
 *
 * Baseline in the same run: `SELECT count(*) FROM verifications` and one full scan of the table.
 */
const FUNDS_MINOR = 1_000_000;
const WINDOW_DAYS = 30;

/** Injected problems: what reconcile must find, and which diagnose checks must fail (with counts). */
const injected = {
  hold_past_deadline: 100,
  terminal_hold_unresolved: 100,
  wrongly_captured: 50,
  upstream_cancel_owed: 50,
  pending_stuck: 50,
  orphan_hold: 50,
};
const expectedChecks: Record<string, number> = {
  terminal_holds_resolved: injected.terminal_hold_unresolved,
  terminal_holds_resolved_correctly: injected.wrongly_captured,
  no_hold_past_deadline: injected.hold_past_deadline,
  no_pending_stuck: injected.pending_stuck,
  no_orphan_holds: injected.orphan_hold,
};

const SERVICES = `ARRAY['whatsapp', 'telegram', 'google', 'facebook', 'test_timeout']`;
const PRICES = `ARRAY[120, 110, 90, 80, 50]`;

/** The generation script, one statement per step (timed separately). */
function generation(total: number): { step: string; sql: string }[] {
  const problemVerifications = injected.hold_past_deadline + injected.terminal_hold_unresolved + injected.wrongly_captured + injected.upstream_cancel_owed + injected.pending_stuck;
  const normal = total - problemVerifications;
  if (normal < 1000) throw new Error(`BENCH_VERIFICATIONS must be at least ${problemVerifications + 1000}`);
  const waiting = Math.min(2000, Math.floor(normal / 100));
  const users = Math.max(100, Math.floor(total / 100));
  // Old rows spread over the window (minus the last half hour); waiting rows over the last 200 s.
  const step = ((WINDOW_DAYS - 1) * 86_400) / (normal - waiting);
  const p = {
    pastDeadline: normal + injected.hold_past_deadline,
    terminalUnresolved: normal + injected.hold_past_deadline + injected.terminal_hold_unresolved,
    wronglyCaptured: normal + injected.hold_past_deadline + injected.terminal_hold_unresolved + injected.wrongly_captured,
    cancelOwed: normal + injected.hold_past_deadline + injected.terminal_hold_unresolved + injected.wrongly_captured + injected.upstream_cancel_owed,
  };
  return [
    { step: 'replica role (ledger triggers off)', sql: `SET session_replication_role = replica` },
    {
      step: 'users',
      sql: `CREATE TEMP TABLE bu AS SELECT n, gen_random_uuid() AS user_id, gen_random_uuid() AS account_id FROM generate_series(0, ${users - 1}) n;
            INSERT INTO users (id, email, password_hash, created_at)
              SELECT user_id, 'bench-' || n || '@bench.example.test', 'bench-no-password', now() - interval '31 days' FROM bu;
            INSERT INTO ledger_accounts (id, kind, user_id, currency, created_at)
              SELECT account_id, 'wallet', user_id, 'USD', now() - interval '31 days' FROM bu;
            CREATE UNIQUE INDEX ON bu (n); ANALYZE bu;`,
    },
    {
      step: 'plan of verifications',
      sql: `CREATE TEMP TABLE g AS
            SELECT t.*, t.created_at + interval '1200 seconds' AS expires_at,
              CASE t.state WHEN 'received' THEN t.created_at + interval '20 seconds'
                           WHEN 'expired' THEN t.created_at + interval '1201 seconds'
                           WHEN 'cancelled' THEN t.created_at + interval '60 seconds'
                           WHEN 'failed' THEN t.created_at + interval '1 second' END AS resolved_at,
              CASE WHEN t.state IN ('pending', 'waiting') OR t.kind = 'terminal_unresolved' THEN NULL
                   WHEN t.kind = 'wrongly_captured' OR t.state = 'received' THEN 'posted'
                   WHEN t.state = 'expired' THEN 'expired' ELSE 'voided' END AS outcome
            FROM (
              SELECT n, kind, gen_random_uuid() AS id, gen_random_uuid() AS hold_id, n % ${users} AS u,
                (${SERVICES})[1 + n % 5] AS service, (${PRICES})[1 + n % 5]::bigint AS price,
                CASE kind WHEN 'old' THEN (CASE WHEN n % 100 < 60 THEN 'received' WHEN n % 100 < 85 THEN 'expired'
                                                WHEN n % 100 < 93 THEN 'cancelled' ELSE 'failed' END)
                          WHEN 'waiting' THEN 'waiting' WHEN 'past_deadline' THEN 'waiting'
                          WHEN 'terminal_unresolved' THEN 'expired' WHEN 'wrongly_captured' THEN 'cancelled'
                          WHEN 'cancel_owed' THEN 'cancelled' ELSE 'pending' END AS state,
                CASE kind WHEN 'old' THEN now() - interval '30 minutes' - make_interval(secs => (${normal - waiting} - n) * ${step})
                          WHEN 'waiting' THEN now() - make_interval(secs => (${normal} - n) * 0.1)
                          WHEN 'past_deadline' THEN now() - interval '40 minutes'
                          WHEN 'pending_stuck' THEN now() - interval '10 minutes'
                          ELSE now() - interval '2 days' - make_interval(secs => n % 1000) END AS created_at
              FROM (
                SELECT n, CASE WHEN n < ${normal - waiting} THEN 'old' WHEN n < ${normal} THEN 'waiting'
                               WHEN n < ${p.pastDeadline} THEN 'past_deadline' WHEN n < ${p.terminalUnresolved} THEN 'terminal_unresolved'
                               WHEN n < ${p.wronglyCaptured} THEN 'wrongly_captured' WHEN n < ${p.cancelOwed} THEN 'cancel_owed'
                               ELSE 'pending_stuck' END AS kind
                FROM generate_series(0, ${total - 1}) n
              ) k
            ) t`,
    },
    {
      step: 'ledger_holds',
      sql: `INSERT INTO ledger_holds (id, account_id, amount_minor, verification_id, expires_at, actor, created_at)
            SELECT g.hold_id, b.account_id, g.price, g.id, g.expires_at, 'customer', g.created_at FROM g JOIN bu b ON b.n = g.u
            UNION ALL
            SELECT gen_random_uuid(), b.account_id, 50, gen_random_uuid(), now() + interval '10 minutes', 'customer', now() - interval '1 hour'
            FROM generate_series(0, ${injected.orphan_hold - 1}) i JOIN bu b ON b.n = i`,
    },
    {
      step: 'verifications',
      sql: `INSERT INTO verifications (id, user_id, provider, service, country, state, price_minor, max_cost_minor, currency,
              idempotency_key, request_fingerprint, hold_id, phone_number, provider_order_id, code, created_at, updated_at,
              expires_at, resolved_at, purchase_until, response_status, response_code, failure_reason, next_check_at,
              upstream_status, upstream_next_at)
            SELECT g.id, b.user_id, 'sandbox', g.service, 'US', g.state, g.price, greatest(1, g.price / 2), 'USD',
              'bench-' || g.n, 'bench', g.hold_id,
              CASE WHEN g.state IN ('pending', 'failed') THEN NULL ELSE '1555' || lpad((g.n % 10000000)::text, 7, '0') END,
              CASE WHEN g.state IN ('pending', 'failed') THEN NULL ELSE 'sbx-' || g.service || ':' || g.id END,
              CASE WHEN g.state = 'received' THEN lpad((g.n % 1000000)::text, 6, '0') END,
              g.created_at, coalesce(g.resolved_at, g.created_at), g.expires_at, g.resolved_at,
              CASE WHEN g.state = 'pending' THEN g.created_at + interval '30 seconds' END,
              CASE WHEN g.state = 'failed' THEN 503 WHEN g.state = 'pending' THEN NULL ELSE 201 END,
              CASE WHEN g.state = 'failed' THEN 'no_numbers' END,
              CASE WHEN g.state = 'failed' THEN 'no_numbers: sandbox: no numbers' END,
              CASE WHEN g.state = 'waiting' THEN least(now() + interval '3 seconds', g.expires_at)
                   WHEN g.state = 'pending' THEN g.created_at + interval '30 seconds' END,
              CASE WHEN g.kind = 'cancel_owed' THEN 'cancel_owed' WHEN g.state = 'received' THEN 'completed'
                   WHEN g.state IN ('expired', 'cancelled') THEN 'cancelled' WHEN g.state = 'failed' THEN 'absent'
                   WHEN g.state = 'waiting' THEN 'open' ELSE 'none' END,
              CASE WHEN g.kind = 'cancel_owed' THEN now() - interval '1 hour' END
            FROM g JOIN bu b ON b.n = g.u`,
    },
    {
      step: 'ledger_hold_resolutions',
      sql: `INSERT INTO ledger_hold_resolutions (hold_id, outcome, actor, reason, created_at)
            SELECT hold_id, outcome, CASE outcome WHEN 'posted' THEN 'poller' WHEN 'expired' THEN 'sweeper' ELSE 'customer' END,
              state || ': benchmark data', coalesce(resolved_at, created_at + interval '20 seconds')
            FROM g WHERE outcome IS NOT NULL`,
    },
    {
      step: 'ledger_transfers (top-ups, charges)',
      sql: `INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, actor, reason, created_at)
              SELECT f.id, b.account_id, ${FUNDS_MINOR}, 'topup', 'admin', 'benchmark funds', now() - interval '31 days'
              FROM bu b, (SELECT id FROM ledger_accounts WHERE code = 'funding') f;
            INSERT INTO ledger_transfers (debit_account_id, credit_account_id, amount_minor, kind, hold_id, verification_id, actor, reason, created_at)
              SELECT b.account_id, r.id, g.price, 'verification_charge', g.hold_id, g.id, 'poller', g.state || ': sms received',
                coalesce(g.resolved_at, g.created_at + interval '20 seconds')
              FROM g JOIN bu b ON b.n = g.u, (SELECT id FROM ledger_accounts WHERE code = 'revenue') r
              WHERE g.outcome = 'posted'`,
    },
    {
      step: 'cached balances from the journal (one UPDATE)',
      sql: `UPDATE ledger_accounts a SET posted_minor = x.posted, held_minor = x.held
            FROM (
              SELECT a.id, coalesce(j.net, 0) AS posted, coalesce(p.held, 0) AS held
              FROM ledger_accounts a
              LEFT JOIN (SELECT account_id, sum(delta) AS net FROM (
                  SELECT credit_account_id AS account_id, amount_minor AS delta FROM ledger_transfers
                  UNION ALL SELECT debit_account_id, -amount_minor FROM ledger_transfers) m GROUP BY account_id) j ON j.account_id = a.id
              LEFT JOIN (SELECT account_id, sum(amount_minor) AS held FROM ledger_holds h
                  WHERE NOT EXISTS (SELECT 1 FROM ledger_hold_resolutions r WHERE r.hold_id = h.id) GROUP BY account_id) p ON p.account_id = a.id
            ) x
            WHERE x.id = a.id AND (a.posted_minor, a.held_minor) IS DISTINCT FROM (x.posted, x.held)`,
    },
    { step: 'replica role off', sql: `RESET session_replication_role; DROP TABLE g; DROP TABLE bu` },
    { step: 'VACUUM ANALYZE', sql: `VACUUM ANALYZE` },
  ];
}

interface OpsRound {
  round: number;
  count_ms: number;
  scan_ms: number;
  diagnose_ms: number;
  reconcile_ms: number;
  cli_diagnose_ms: number;
  cli_reconcile_ms: number;
  cli_start_ms: number;
  load: LoadReport;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

function diagnoseProblems(report: DiagnoseReport): string[] {
  const problems: string[] = [];
  for (const check of report.checks) {
    const expected = expectedChecks[check.name] ?? 0;
    if (check.count !== expected) problems.push(`diagnose ${check.name}: ${check.count} (expected ${expected})`);
  }
  if (report.ok) problems.push('diagnose said ok although problems were injected');
  if (report.upstream_settlement_owed.count !== injected.upstream_cancel_owed) {
    problems.push(`diagnose upstream_settlement_owed ${report.upstream_settlement_owed.count} (expected ${injected.upstream_cancel_owed})`);
  }
  return problems;
}

function reconcileProblems(report: ReconcileReport): string[] {
  const problems: string[] = [];
  const kinds = new Set([...Object.keys(report.summary), ...Object.keys(injected)]);
  for (const kind of kinds) {
    const found = report.summary[kind as keyof ReconcileReport['summary']] ?? 0;
    const expected = injected[kind as keyof typeof injected] ?? 0;
    if (found !== expected) problems.push(`reconcile ${kind}: ${found} (expected ${expected})`);
  }
  return problems;
}

export async function benchOps(): Promise<BenchReport> {
  const total = envInt('BENCH_VERIFICATIONS', 200_000);
  const rounds = Math.max(1, envInt('BENCH_ROUNDS', 3));
  const injectedTotal = Object.values(injected).reduce((a, b) => a + b, 0);
  const url = await createScratch();
  const problems: string[] = [];
  const steps: { step: string; ms: number }[] = [];
  const results: OpsRound[] = [];
  let counts = '';
  let breakdown = { ledger_ms: 0, lifecycle_ms: 0 };
  try {
    const settings = { DATABASE_URL: url, PROVIDER: 'sandbox', LOG_LEVEL: 'warn' };
    const config = loadConfig(settings);
    const database = await openDatabase({ databaseUrl: url, poolSize: 4 });
    try {
      await prepareDatabase(database, config, new Date());
      log(`ops: generating ${total} verifications (${injectedTotal} injected problems)`);
      await withClient(url, async (client) => {
        for (const { step, sql } of generation(total)) {
          const { ms } = await timed(() => client.query(sql));
          steps.push({ step, ms: round(ms, 0) });
          log(`ops: ${step}: ${round(ms / 1000, 1)} s`);
        }
        const { rows } = await client.query<{ v: string; h: string; t: string; r: string }>(
          `SELECT (SELECT count(*) FROM verifications) AS v, (SELECT count(*) FROM ledger_holds) AS h,
                  (SELECT count(*) FROM ledger_transfers) AS t, (SELECT count(*) FROM ledger_hold_resolutions) AS r`,
        );
        const c = rows[0]!;
        counts = `${c.v} verifications, ${c.h} holds, ${c.r} resolutions, ${c.t} transfers`;
        log(`ops: ${counts}`);
      });

      const ctx: AppContext = { config, database, clock: systemClock, logger: createLogger({ LOG_LEVEL: 'warn', LOG_FILE: undefined }, { destination: process.stderr }) };
      const runtime = createVerificationRuntime(ctx, { workerId: 'bench-reconcile' });
      const cliSettings = { DATABASE_URL: url, PROVIDER: 'sandbox', LOG_LEVEL: 'error' };
      for (let index = 1; index <= rounds; index++) {
        const { value, load } = await withLoad(async () => {
          const baseline = await withClient(url, async (client) => {
            const count = await timed(() => client.query('SELECT count(*) FROM verifications'));
            const scan = await timed(() => client.query('SELECT count(*), sum(price_minor), max(updated_at), count(DISTINCT state) FROM verifications'));
            return { count: count.ms, scan: scan.ms };
          });
          const diag = await timed(() => diagnose({ database, clock: systemClock, config }));
          const rec = await timed(() => reconcile(runtime.deps, { days: WINDOW_DAYS, execute: false }));
          const cliDiag = await runCli(['diagnose', '--json'], cliSettings);
          const cliRec = await runCli(['reconcile', '--days', String(WINDOW_DAYS), '--dry-run', '--json'], cliSettings);
          const cliStart = await runCli(['--help'], cliSettings);
          if (index === 1) {
            problems.push(...diagnoseProblems(diag.value), ...reconcileProblems(rec.value));
            try {
              const cliDiagnose = JSON.parse(cliDiag.stdout) as DiagnoseReport;
              const cliReconcile = JSON.parse(cliRec.stdout) as ReconcileReport;
              problems.push(...diagnoseProblems(cliDiagnose).map((p) => `CLI ${p}`), ...reconcileProblems(cliReconcile).map((p) => `CLI ${p}`));
              if (cliDiag.code !== 1 || cliRec.code !== 1) problems.push(`CLI exit codes ${cliDiag.code}/${cliRec.code}, expected 1/1 (problems present)`);
            } catch {
              problems.push(`CLI output was not JSON: ${cliDiag.stderr.slice(0, 200)} ${cliRec.stderr.slice(0, 200)}`);
            }
          }
          return {
            count_ms: round(baseline.count, 1),
            scan_ms: round(baseline.scan, 1),
            diagnose_ms: round(diag.ms, 0),
            reconcile_ms: round(rec.ms, 0),
            cli_diagnose_ms: round(cliDiag.ms, 0),
            cli_reconcile_ms: round(cliRec.ms, 0),
            cli_start_ms: round(cliStart.ms, 0),
          };
        });
        results.push({ round: index, ...value, load });
        log(`ops: round ${index}: count ${value.count_ms} ms, scan ${value.scan_ms} ms, diagnose ${value.diagnose_ms} ms, reconcile ${value.reconcile_ms} ms, CLI ${value.cli_diagnose_ms}/${value.cli_reconcile_ms} ms`);
      }
      // Where diagnose spends its time: its two invariant passes, timed on their own.
      const ledger = await timed(() => checkLedgerInvariants(database.db));
      const lifecycle = await timed(() => checkLifecycleInvariants(database.db, new Date()));
      breakdown = { ledger_ms: round(ledger.ms, 0), lifecycle_ms: round(lifecycle.ms, 0) };
    } finally {
      await database.close();
    }
  } finally {
    // BENCH_KEEP_DATABASE=1 leaves the data for inspection (drop it with `DROP DATABASE namaskah_bench`).
    if (process.env.BENCH_KEEP_DATABASE !== '1') await dropScratch();
  }

  const m = (key: keyof Omit<OpsRound, 'round' | 'load'>) => round(median(results.map((r) => r[key])), 0);
  const scan = median(results.map((r) => r.scan_ms));
  const diagnoseMs = m('diagnose_ms');
  const reconcileMs = m('reconcile_ms');
  const cliDiagnoseMs = m('cli_diagnose_ms');
  const cliReconcileMs = m('cli_reconcile_ms');
  const worst = Math.max(diagnoseMs, reconcileMs, cliDiagnoseMs, cliReconcileMs);
  // "Seconds, not minutes": under a minute, end to end, for the operator's command.
  const met = worst < 60_000 && problems.length === 0;
  const generationMs = steps.reduce((a, s) => a + s.ms, 0);

  const markdown = [
    `### ops`,
    ``,
    `PostgreSQL: ${counts} (created over ${WINDOW_DAYS - 1} days; 60 % received, 25 % expired, 8 % cancelled, 5 % failed, ` +
      `up to 2,000 waiting; ${injectedTotal} injected problems: ${Object.entries(injected).map(([k, v]) => `${v} ${k}`).join(', ')}). ` +
      `Generated set-based in ${round(generationMs / 1000, 1)} s (${steps.map((s) => `${s.step} ${round(s.ms / 1000, 1)} s`).join('; ')}). ` +
      `Each round: the baseline queries, \`diagnose()\` and \`reconcile(--days ${WINDOW_DAYS}, dry run)\` in-process, then the CLI ` +
      `(\`namaskah diagnose --json\`, \`namaskah reconcile --days ${WINDOW_DAYS} --dry-run --json\`, child processes, start-up included) and \`namaskah --help\` for the start-up cost alone.`,
    ``,
    table(
      ['round', 'count(*) (ms)', 'full scan (ms)', 'diagnose (ms)', 'reconcile dry-run (ms)', 'CLI diagnose (ms)', 'CLI reconcile (ms)', 'CLI start-up (ms)', 'load'],
      results.map((r) => [r.round, r.count_ms, r.scan_ms, r.diagnose_ms, r.reconcile_ms, r.cli_diagnose_ms, r.cli_reconcile_ms, r.cli_start_ms, formatLoad(r.load)]),
    ),
    ``,
    `**Median: diagnose ${round(diagnoseMs / 1000, 2)} s (${round(diagnoseMs / scan, 1)} × a full scan), reconcile dry-run ${round(reconcileMs / 1000, 2)} s ` +
      `(${round(reconcileMs / scan, 1)} × a full scan); as CLI commands ${round(cliDiagnoseMs / 1000, 2)} s and ${round(cliReconcileMs / 1000, 2)} s; ` +
      `baseline count(*) ${m('count_ms')} ms, full scan ${round(scan, 0)} ms** (target: seconds, not minutes: ${met ? 'met' : 'NOT met'}).`,
    ``,
    `Where diagnose's time goes (timed once more, after the rounds): the ledger invariants (5 statements) ${round(breakdown.ledger_ms / 1000, 2)} s, ` +
      `the lifecycle invariants (2 statements) ${round(breakdown.lifecycle_ms / 1000, 2)} s; the rest (counts, rates, engine lag) is the remainder.`,
    ``,
    problems.length
      ? `PROBLEMS: ${problems.join('; ')}.`
      : `Both tools (in-process and CLI) found exactly the injected problems: diagnose failed exactly ${Object.entries(expectedChecks).map(([k, v]) => `${k} (${v})`).join(', ')} ` +
        `and reported ${injected.upstream_cancel_owed} upstream cancels owed; every ledger invariant held; reconcile listed exactly the ${injectedTotal}.`,
    ``,
  ].join('\n');

  return {
    name: 'ops',
    ok: met,
    summary: `ops: ${total} verifications → diagnose ${round(diagnoseMs / 1000, 2)} s, reconcile dry-run ${round(reconcileMs / 1000, 2)} s (CLI ${round(cliDiagnoseMs / 1000, 2)} / ${round(cliReconcileMs / 1000, 2)} s), full scan ${round(scan, 0)} ms (target seconds: ${met ? 'met' : 'missed'})`,
    markdown,
    data: { settings: { verifications: total, rounds, window_days: WINDOW_DAYS, injected }, generation: steps, counts, rounds: results, diagnose_breakdown: breakdown, problems, met },
  };
}
