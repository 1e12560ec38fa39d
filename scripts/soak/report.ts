import { formatLoad, table, type LoadReport } from '../../bench/support/stats.ts';
import type { Answer } from './answers.ts';
import type { BlackoutReport } from './blackout.ts';
import type { RefundDelays } from './checks.ts';
import type { KillEvent, UnexpectedExit } from './fleet.ts';
import type { SoakSettings } from './settings.ts';

/** A soak run's figures: written as JSON and summarised as Markdown. */
export interface ViolationGroup {
  kind: string;
  count: number;
  samples: string[];
}

export interface SoakReport {
  preset: SoakSettings['preset'];
  commit: string;
  started_at: string;
  wall_seconds: number;
  load_seconds: number;
  drain_seconds: number;
  machine: { cpu: string; cores: number; node: string; postgres: string };
  load: LoadReport;
  settings: Omit<SoakSettings, 'logDir' | 'resultsDir'>;
  verifications: { total: number; by_state: Record<string, number>; late_sms: number };
  requests: Record<Answer['kind'], Record<string, number>>;
  kills: { total: number; api: number; engine: number; in_blackouts: number; restarts: number; unexpected_exits: UnexpectedExit[] };
  blackouts: BlackoutReport[];
  /** All expired verifications, and those whose deadline fell outside every blackout. */
  refund_delay: { all: RefundDelays; outside_blackouts: RefundDelays };
  diagnose: { ok: boolean | null; exit_code: number | null; failed: string[] };
  violations: { total: number; by_kind: ViolationGroup[] };
}

export function countAnswers(answers: Answer[]): SoakReport['requests'] {
  const out: SoakReport['requests'] = { purchase: {}, cancel: {}, sms: {} };
  for (const a of answers) {
    const label = a.code ? `${a.status} ${a.code}` : String(a.status);
    out[a.kind][label] = (out[a.kind][label] ?? 0) + 1;
  }
  return out;
}

export function countKills(kills: KillEvent[], restarts: number, unexpected: UnexpectedExit[]): SoakReport['kills'] {
  return {
    total: kills.length,
    api: kills.filter((k) => k.role === 'api').length,
    engine: kills.filter((k) => k.role === 'engine').length,
    in_blackouts: kills.filter((k) => k.why === 'blackout').length,
    restarts,
    unexpected_exits: unexpected,
  };
}

function answersLine(counts: Record<string, number>): string {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const parts = Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([label, n]) => `${label} ×${n}`);
  return `${total}: ${parts.join(', ') || 'none'}`;
}

const seconds = (v: number | null) => (v === null ? '–' : `${v} s`);

export function markdown(report: SoakReport): string {
  const s = report.settings;
  const states = Object.entries(report.verifications.by_state)
    .map(([state, n]) => `${state} ${n}`)
    .join(', ');
  const delay = (d: RefundDelays) => `p50 ${seconds(d.p50_seconds)}, p99 ${seconds(d.p99_seconds)}, max ${seconds(d.max_seconds)} over ${d.expired}`;
  const lines = [
    `## Soak (${report.preset}) ${report.started_at}`,
    '',
    `Commit ${report.commit}. ${report.machine.cpu}, ${report.machine.cores} cores; Node ${report.machine.node}; PostgreSQL ${report.machine.postgres}. ` +
      `Load average during the run: ${formatLoad(report.load)}.`,
    '',
    `${s.apis} API processes (\`serve --no-worker\`) and ${s.engines} engine processes (\`worker\`) on one PostgreSQL database; ` +
      `${s.concurrency} customer loops over ${s.customers} customers (${s.poorCustomers} of them nearly broke); sandbox upstream, ` +
      `VERIFICATION_TTL_SECONDS ${s.ttlSeconds}, SANDBOX_DELAY_MS ${s.sandboxDelayMs}; a kill -9 every ${s.killEverySeconds} s on average; ` +
      `${s.blackouts} engine blackout(s); seed ${s.seed}. Load ${report.load_seconds} s, drain ${report.drain_seconds} s, wall ${report.wall_seconds} s.`,
    '',
    table(
      ['', ''],
      [
        ['verifications', `${report.verifications.total} (${states}); late SMS stored: ${report.verifications.late_sms}`],
        ['purchase answers', answersLine(report.requests.purchase)],
        ['cancel answers', answersLine(report.requests.cancel)],
        ['hand-delivered SMS answers', answersLine(report.requests.sms)],
        [
          'kills (kill -9)',
          `${report.kills.total}: ${report.kills.api} API, ${report.kills.engine} engine (${report.kills.in_blackouts} of them in blackouts); ` +
            `${report.kills.restarts} restarts; ${report.kills.unexpected_exits.length} exits nobody caused`,
        ],
        ['refund delay (expired: resolved_at − expires_at)', delay(report.refund_delay.all)],
        ['… deadlines outside the blackouts', delay(report.refund_delay.outside_blackouts)],
        ['`diagnose --json`', report.diagnose.ok === null ? 'did not run' : report.diagnose.ok ? 'ok' : `failed: ${report.diagnose.failed.join(', ')}`],
        ['violations', String(report.violations.total)],
      ],
    ),
    '',
  ];
  if (report.violations.by_kind.length > 0) {
    lines.push(
      '### Violations by kind',
      '',
      table(
        ['kind', 'count', 'examples'],
        report.violations.by_kind.map((v) => [`\`${v.kind}\``, v.count, v.samples.slice(0, 2).join('; ').replace(/\|/g, '/')]),
      ),
      '',
    );
  }
  if (report.blackouts.length > 0) {
    lines.push(
      '### Engine blackouts',
      '',
      table(
        ['#', 'engines killed', 'bought (test_late + test_timeout)', 'SMS after the deadline', 'answered received (charged)', 'wallet: credited → final', 'seconds'],
        report.blackouts.map((b) => [
          b.index,
          b.engines_killed,
          b.bought,
          b.sms_after_deadline,
          b.sms_answered_received,
          `${b.funded_minor} → ${b.final_posted_minor ?? '?'}`,
          b.seconds,
        ]),
      ),
      '',
    );
  }
  return lines.join('\n');
}
