// Operator: health (database, engine lag, provider breakers), diagnose and reconcile.
import { h, fill } from '../dom.js';
import { api, ApiError } from '../api.js';
import { describeError } from '../errors.js';
import { formatDateTime } from '../format.js';
import { pageHeader, errorBox, loading, emptyState } from '../ui.js';

const HEALTH_REFRESH_MS = 10_000;

function okBadge(ok, yes = 'OK', no = 'Fail') {
  return h('span', { class: `badge ${ok ? 'badge-ok' : 'badge-fail'}` }, ok ? yes : no);
}

const BREAKER_LABELS = { closed: 'Closed — healthy', open: 'Open — failing fast', half_open: 'Half-open — testing', isolated: 'Isolated — held open' };

function breakerBadge(state) {
  return h('span', { class: `badge badge-breaker-${state}` }, BREAKER_LABELS[state] ?? state);
}

function humanKey(key) {
  return String(key).replace(/_/g, ' ').replace(/^\w/, (c) => c.toUpperCase());
}

function scalar(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return okBadge(value, 'Yes', 'No');
  if (typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value)) return formatDateTime(value);
  return String(value);
}

/** Render any JSON report readably: scalars as a list, arrays of objects as tables. */
export function renderReport(value, depth = 0) {
  if (value === null || typeof value !== 'object') return h('span', null, scalar(value));
  if (Array.isArray(value)) {
    if (!value.length) return h('p', { class: 'muted' }, 'None.');
    if (value.every((v) => v && typeof v === 'object' && !Array.isArray(v))) {
      const columns = [...new Set(value.flatMap((row) => Object.keys(row)))].slice(0, 8);
      return h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table responsive compact' },
          h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, humanKey(c))))),
          h(
            'tbody',
            null,
            value.slice(0, 200).map((row) =>
              h(
                'tr',
                null,
                columns.map((c) => h('td', { 'data-label': humanKey(c) }, row[c] !== null && typeof row[c] === 'object' ? JSON.stringify(row[c]) : scalar(row[c]))),
              ),
            ),
          ),
        ),
        value.length > 200 ? h('p', { class: 'hint' }, `Showing 200 of ${value.length}.`) : null,
      );
    }
    return h('p', null, value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(', '));
  }
  const entries = Object.entries(value);
  if (!entries.length) return h('p', { class: 'muted' }, 'Nothing to report.');
  return h(
    'dl',
    { class: `report depth-${Math.min(depth, 2)}` },
    entries.map(([key, v]) => h('div', { class: 'report-row' }, h('dt', null, humanKey(key)), h('dd', null, depth < 2 || v === null || typeof v !== 'object' ? renderReport(v, depth + 1) : JSON.stringify(v)))),
  );
}

/** Down: the database does not answer; degraded: it does, but another check is unhappy. */
function overallBadge(status, degraded) {
  if (status !== 'up') return h('span', { class: 'badge badge-fail' }, 'Down');
  return degraded ? h('span', { class: 'badge badge-warn' }, 'Degraded') : h('span', { class: 'badge badge-ok' }, 'Ok');
}

function checkError(check) {
  return check.error ? h('p', { class: 'hint' }, check.error) : null;
}

/**
 * GET /health as an operator sees it: { status: 'up' | 'down', degraded, checks } with `database` ({ ok, error? }),
 * `engine` ({ ok, lag_seconds, workers } or { ok: false, error }), `breakers` ({ ok, <provider>:
 * { state } }) and any further checks the running server adds ({ ok, error?, … }).
 */
function healthView({ status, degraded, checks }) {
  const { database, engine, breakers, ...others } = checks;
  const providers = Object.entries(breakers).filter(([name]) => name !== 'ok' && name !== 'error');
  const lag = engine.lag_seconds;
  return [
    h(
      'dl',
      { class: 'health-grid' },
      h('div', { class: 'health-item' }, h('dt', null, 'Overall'), h('dd', null, overallBadge(status, degraded))),
      h('div', { class: 'health-item' }, h('dt', null, 'Database'), h('dd', null, okBadge(database.ok, 'Reachable', 'Unreachable'), checkError(database))),
      h(
        'div',
        { class: 'health-item' },
        h('dt', null, 'Engine lag'),
        h('dd', null, typeof lag === 'number' ? h('span', { class: `badge ${engine.ok && lag < 30 ? 'badge-ok' : 'badge-warn'}` }, `${lag < 10 ? lag.toFixed(1) : Math.round(lag)} s`) : okBadge(engine.ok), checkError(engine)),
      ),
      Object.entries(others).map(([name, check]) => h('div', { class: 'health-item' }, h('dt', null, humanKey(name)), h('dd', null, okBadge(check.ok), checkError(check)))),
    ),
    h('h3', { class: 'subhead' }, 'Providers'),
    checkError(breakers),
    providers.length
      ? h(
          'table',
          { class: 'table responsive compact', id: 'breakers' },
          h('caption', { class: 'visually-hidden' }, 'Provider circuit breakers'),
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Provider'), h('th', { scope: 'col' }, 'Circuit breaker'))),
          h('tbody', null, providers.map(([name, { state }]) => h('tr', null, h('td', { 'data-label': 'Provider' }, name), h('td', { 'data-label': 'Circuit breaker' }, breakerBadge(state))))),
        )
      : emptyState('No provider breakers reported.'),
  ];
}

async function healthReport() {
  try {
    return await api.get('/health');
  } catch (error) {
    // 503 means the database did not answer; the body is still the report to show.
    if (error instanceof ApiError && error.status === 503 && error.problem.checks) return error.problem;
    throw error;
  }
}

export async function render(main, ctx) {
  main.append(pageHeader('Operations', 'Provider health, ledger invariants and the reconciler.'));

  // ---------------------------------------------------------------- health
  const healthBody = h('div', { id: 'health' }, loading('Checking health…'));
  const healthRefresh = h('button', { type: 'button', class: 'button ghost small' }, 'Refresh');
  const healthUpdated = h('span', { class: 'hint' });
  main.append(
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'health-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'health-title', class: 'card-title' }, 'Health'), h('div', { class: 'button-row' }, healthUpdated, healthRefresh)),
      healthBody,
    ),
  );

  async function loadHealth() {
    healthRefresh.disabled = true;
    try {
      const report = await healthReport();
      if (!ctx.isCurrent()) return;
      fill(healthBody, healthView(report));
      healthUpdated.textContent = `Updated ${new Date().toLocaleTimeString('en-US')}`;
    } catch (error) {
      if (!ctx.isCurrent()) return;
      const box = errorBox();
      box.show(describeError(error));
      fill(healthBody, box.el);
    } finally {
      healthRefresh.disabled = false;
    }
  }
  healthRefresh.addEventListener('click', loadHealth);
  const healthTimer = setInterval(loadHealth, HEALTH_REFRESH_MS);
  ctx.onCleanup(() => clearInterval(healthTimer));

  // ---------------------------------------------------------------- diagnose
  const diagnoseBody = h('div', { id: 'diagnose', 'aria-live': 'polite', 'aria-busy': 'false' });
  const diagnoseButton = h('button', { type: 'button', class: 'button', id: 'run-diagnose' }, 'Run diagnose');
  main.append(
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'diagnose-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'diagnose-title', class: 'card-title' }, 'Diagnose'), diagnoseButton),
      h('p', { class: 'hint' }, 'Read-only. Proves the ledger invariants on the live database and counts anything unusual.'),
      diagnoseBody,
    ),
  );

  async function runDiagnose() {
    diagnoseButton.disabled = true;
    diagnoseBody.setAttribute('aria-busy', 'true');
    fill(diagnoseBody, loading('Running diagnose…'));
    try {
      const { ok, checks, ...rest } = await api.get('/v1/admin/diagnose');
      if (!ctx.isCurrent()) return;
      const failed = checks.filter((c) => !c.ok);
      fill(
        diagnoseBody,
        h(
          'div',
          { class: `alert ${ok && !failed.length ? 'alert-success' : 'alert-error'}`, id: 'diagnose-summary' },
          h('p', null, ok && !failed.length ? `All ${checks.length} checks passed.` : `${failed.length} of ${checks.length} checks failed.`),
        ),
        h(
          'table',
          { class: 'table responsive compact', id: 'diagnose-checks' },
          h('caption', { class: 'visually-hidden' }, 'Diagnose checks'),
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Check'), h('th', { scope: 'col' }, 'Result'), h('th', { scope: 'col', class: 'num' }, 'Count'), h('th', { scope: 'col' }, 'Detail'))),
          h(
            'tbody',
            null,
            checks.map((c) =>
              h(
                'tr',
                { class: c.ok ? '' : 'row-fail', dataset: { check: c.name } },
                h('td', { 'data-label': 'Check' }, humanKey(c.name)),
                h('td', { 'data-label': 'Result' }, okBadge(c.ok)),
                h('td', { 'data-label': 'Count', class: 'num' }, c.count ?? '—'),
                h('td', { 'data-label': 'Detail' }, c.detail ?? ''),
              ),
            ),
          ),
        ),
        Object.keys(rest).length ? h('details', { class: 'report-details' }, h('summary', null, 'Full report'), renderReport(rest)) : null,
      );
    } catch (error) {
      if (!ctx.isCurrent()) return;
      const box = errorBox();
      box.show(describeError(error));
      fill(diagnoseBody, box.el);
    } finally {
      diagnoseButton.disabled = false;
      diagnoseBody.setAttribute('aria-busy', 'false');
    }
  }
  diagnoseButton.addEventListener('click', runDiagnose);

  // ---------------------------------------------------------------- reconcile
  const days = h('input', { type: 'number', id: 'reconcile-days', name: 'days', min: '1', max: '3650', step: '1', value: '30', inputmode: 'numeric', required: true });
  const daysError = h('p', { class: 'field-error', id: 'reconcile-days-error', hidden: true });
  days.setAttribute('aria-describedby', 'reconcile-days-hint reconcile-days-error');
  const dryRun = h('button', { type: 'submit', class: 'button', id: 'reconcile-dry-run', value: 'dry' }, 'Dry run');
  const execute = h('button', { type: 'button', class: 'button danger-ghost', id: 'reconcile-execute' }, 'Execute repairs…');
  const confirmRow = h('div', { class: 'confirm-row', hidden: true });
  const reconcileBody = h('div', { id: 'reconcile-result', 'aria-live': 'polite' });
  const reconcileForm = h(
    'form',
    { class: 'stack', novalidate: true },
    h(
      'div',
      { class: 'field narrow' },
      h('label', { for: 'reconcile-days' }, 'Days to look back'),
      days,
      h('p', { class: 'hint', id: 'reconcile-days-hint' }, 'Whole days, 1 to 3650.'),
      daysError,
    ),
    h('div', { class: 'button-row' }, dryRun, execute),
    confirmRow,
  );
  main.append(
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'reconcile-title' },
      h('h2', { id: 'reconcile-title', class: 'card-title' }, 'Reconcile'),
      h('p', { class: 'hint' }, 'Finds money problems in the window — unresolved holds past their deadline, wrongly settled verifications, stuck purchases, upstream orders owed a cancel — and repairs them through the normal settlement path. A dry run changes nothing.'),
      reconcileForm,
      reconcileBody,
    ),
  );

  function readDays() {
    const text = days.value.trim();
    if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 3650) {
      daysError.textContent = 'Enter a whole number of days between 1 and 3650.';
      daysError.hidden = false;
      days.setAttribute('aria-invalid', 'true');
      days.focus();
      return null;
    }
    daysError.hidden = true;
    days.removeAttribute('aria-invalid');
    return Number(text);
  }

  async function reconcile(executeRepairs) {
    const n = readDays();
    if (n === null) return;
    dryRun.disabled = true;
    execute.disabled = true;
    fill(reconcileBody, loading(executeRepairs ? 'Repairing…' : 'Looking for problems…'));
    try {
      const data = await api.post('/v1/admin/reconcile', { days: n, execute: executeRepairs });
      if (!ctx.isCurrent()) return;
      fill(
        reconcileBody,
        h(
          'div',
          { class: 'alert alert-info', id: 'reconcile-summary' },
          h('p', null, h('strong', null, executeRepairs ? 'Repairs executed' : 'Dry run — nothing was changed'), ` · last ${n} day${n === 1 ? '' : 's'}`),
        ),
        renderReport(data),
      );
    } catch (error) {
      if (!ctx.isCurrent()) return;
      const box = errorBox();
      box.show(describeError(error));
      fill(reconcileBody, box.el);
    } finally {
      dryRun.disabled = false;
      execute.disabled = false;
    }
  }

  reconcileForm.addEventListener('submit', (event) => {
    event.preventDefault();
    confirmRow.hidden = true;
    reconcile(false);
  });
  execute.addEventListener('click', () => {
    if (readDays() === null) return;
    const yes = h('button', { type: 'button', class: 'button danger', id: 'reconcile-confirm' }, 'Yes, execute repairs');
    const no = h('button', { type: 'button', class: 'button ghost' }, 'Not now');
    fill(confirmRow, h('p', null, 'Repairs move money through the ledger (every repair is audited). Run a dry run first if unsure.'), h('div', { class: 'button-row' }, yes, no));
    confirmRow.hidden = false;
    yes.focus();
    yes.addEventListener('click', () => {
      confirmRow.hidden = true;
      reconcile(true);
    });
    no.addEventListener('click', () => {
      confirmRow.hidden = true;
      execute.focus();
    });
  });

  await Promise.all([loadHealth(), runDiagnose()]);
}
