import { formatMinor } from '../money.ts';
import type { DiagnoseReport, ReconcileReport } from './reports.ts';

/** Plain-text renderings of the ops reports for a terminal (the JSON forms are the reports as they are). */

function table(headers: string[], body: string[][], maxWidths: number[] = []): string {
  const cells = [headers, ...body].map((row) =>
    row.map((cell, i) => {
      const max = maxWidths[i];
      const text = cell.replace(/\s+/g, ' ');
      return max && text.length > max ? `${text.slice(0, max - 1)}…` : text;
    }),
  );
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function percent(rate: number | null): string {
  return rate === null ? '—' : `${(rate * 100).toFixed(1)}%`;
}

export function formatDiagnose(report: DiagnoseReport, currency: string): string {
  const failed = report.checks.filter((c) => !c.ok);
  const lines: string[] = [];
  lines.push(`Namaskah diagnose at ${report.generated_at}: ${report.ok ? 'OK, every invariant holds' : `${failed.length} of ${report.checks.length} checks FAILED`}`);
  lines.push('');
  lines.push(
    table(
      ['CHECK', 'RESULT', 'COUNT', 'DETAIL'],
      report.checks.map((c) => [c.name, c.ok ? 'ok' : 'FAIL', String(c.count), c.detail]),
      [0, 0, 0, 160],
    ),
  );
  lines.push('');
  lines.push(`States: ${Object.entries(report.states).map(([s, n]) => `${s} ${n}`).join(' · ')}`);
  const d = report.last_24h;
  lines.push(
    `Last 24 h: ${d.purchases} purchases · received ${d.received} · expired ${d.expired} · cancelled ${d.cancelled} · failed ${d.failed} · ` +
      `success ${percent(d.success_rate)} · timeout ${percent(d.timeout_rate)} · refund ${percent(d.refund_rate)}`,
  );
  lines.push(
    `Top failing services: ${
      report.top_failing_services.length === 0
        ? 'none'
        : report.top_failing_services.map((s) => `${s.provider}/${s.service} ${s.failures}/${s.purchases} (${percent(s.failure_rate)})`).join(' · ')
    }`,
  );
  lines.push(`Breakers: ${Object.entries(report.breakers).map(([p, s]) => `${p} ${s}`).join(' · ') || 'none'}`);
  const alive = report.engine.workers.filter((w) => w.alive).length;
  lines.push(`Engine: lag ${report.engine.lag_seconds.toFixed(1)} s · ${alive} of ${report.engine.workers.length} workers alive`);
  lines.push(`Late SMS (shown, never charged): ${report.late_sms}`);
  const owed = report.upstream_settlement_owed;
  lines.push(
    `Upstream settlement owed: ${owed.count} cancels (up to ${formatMinor(owed.amount_minor, currency)}) · suspected orphans ${owed.orphans_suspected}`,
  );
  const t = report.top_ups;
  lines.push(
    `Top-ups: ${t.pending} pending (${t.overdue} overdue) · ${t.in_review} in review · ${t.unknown_payments} unknown payments · ` +
      `receivables ${formatMinor(t.receivables.amount_minor, currency)} from ${t.receivables.customers} customers`,
  );
  for (const warning of report.warnings) lines.push(`Warning: ${warning}`);
  return `${lines.join('\n')}\n`;
}

export function formatReconcile(report: ReconcileReport, currency: string): string {
  const lines: string[] = [];
  const who = report.user_email ? ` for ${report.user_email}` : '';
  lines.push(
    `Reconcile, last ${report.window_days} day${report.window_days === 1 ? '' : 's'}${who}: ${report.execute ? 'repairs executed' : 'dry run, nothing changed'}`,
  );
  lines.push('');
  if (report.found.length === 0) {
    lines.push('No money problems found.');
  } else {
    lines.push(
      table(
        ['KIND', 'VERIFICATION', 'USER', 'AMOUNT', 'REPAIRED', 'DETAIL'],
        report.found.map((f) => [
          f.kind,
          f.verification_id ?? '—',
          f.user_email ?? '—',
          f.amount_minor === null ? '—' : formatMinor(f.amount_minor, currency),
          report.execute ? (f.repaired ? 'yes' : 'NO') : '-',
          f.detail,
        ]),
        [0, 0, 40, 0, 0, 120],
      ),
    );
    lines.push('');
    lines.push(`Summary: ${Object.entries(report.summary).map(([k, n]) => `${k} ${n}`).join(' · ')}`);
  }
  for (const warning of report.warnings) lines.push(`Warning: ${warning}`);
  const problems = (n: number) => `${n} problem${n === 1 ? '' : 's'}`;
  if (report.execute) {
    if (report.found.length > 0) lines.push(`Repaired ${report.repaired} of ${report.found.length}; ${problems(report.remaining)} remaining.`);
  } else if (report.remaining > 0) {
    lines.push(`${problems(report.remaining)} found; nothing was changed (run with --execute to repair).`);
  }
  return `${lines.join('\n')}\n`;
}
