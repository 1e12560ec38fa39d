// Operator: each upstream — its mode (enable, disable = kill switch, drain), breaker, our balance there
// with the low-balance threshold, owed cancels, and per offer the margin and how it delivered lately.
import { h, fill } from '../dom.js';
import { api } from '../api.js';
import { describeError } from '../errors.js';
import { formatDateTime, formatMoney, minorToDecimal, parseMajorToMinor } from '../format.js';
import { pageHeader, errorBox, loading, emptyState, toast } from '../ui.js';

const MODE_LABELS = { enabled: 'Enabled', disabled: 'Disabled — kill switch', draining: 'Draining' };
const MODE_BADGES = { enabled: 'badge-ok', disabled: 'badge-fail', draining: 'badge-warn' };
const BREAKER_LABELS = { closed: 'Closed — healthy', open: 'Open — failing fast', half_open: 'Half-open — testing', isolated: 'Isolated — held open' };
const ACTIONS = [
  { mode: 'enabled', label: 'Enable', class: 'button small' },
  { mode: 'draining', label: 'Drain', class: 'button ghost small' },
  { mode: 'disabled', label: 'Disable', class: 'button danger small' },
];

function percent(rate) {
  return rate === null ? null : `${Math.round(rate * 1000) / 10} %`;
}

function deliveryCell(stats) {
  if (stats.success_rate === null) return h('span', { class: 'muted' }, stats.sample_size ? `too few (${stats.sample_size})` : 'no data');
  return `${percent(stats.success_rate)} of ${stats.sample_size}`;
}

function offersTable(upstream) {
  if (!upstream.offers.length) return emptyState('No offers in the catalogue.');
  const currency = upstream.balance?.currency || 'USD';
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'table responsive compact', dataset: { offers: upstream.provider } },
      h('caption', { class: 'visually-hidden' }, `Offers of ${upstream.provider}`),
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          ['Service', 'Country', 'Price', 'Cost', 'Margin', 'Success (24 h)', 'Median to code'].map((c, i) => h('th', { scope: 'col', class: i >= 2 ? 'num' : null }, c)),
        ),
      ),
      h(
        'tbody',
        null,
        upstream.offers.map((o) =>
          h(
            'tr',
            { class: o.enabled === false ? 'muted' : null },
            h('td', { 'data-label': 'Service' }, o.service),
            h('td', { 'data-label': 'Country' }, o.country),
            h('td', { 'data-label': 'Price', class: 'num' }, o.price_minor === null ? '—' : formatMoney(o.price_minor, currency)),
            h('td', { 'data-label': 'Cost', class: 'num' }, o.cost_minor === null ? '—' : formatMoney(o.cost_minor, currency)),
            h('td', { 'data-label': 'Margin', class: `num${o.margin_minor !== null && o.margin_minor <= 0 ? ' negative' : ''}` }, o.margin_minor === null ? '—' : formatMoney(o.margin_minor, currency)),
            h('td', { 'data-label': 'Success (24 h)', class: 'num' }, deliveryCell(o.last_24h)),
            h('td', { 'data-label': 'Median to code', class: 'num' }, o.last_24h.median_seconds_to_code === null ? '—' : `${o.last_24h.median_seconds_to_code} s`),
          ),
        ),
      ),
    ),
  );
}

function upstreamCard(upstream, onChange) {
  const currency = upstream.balance?.currency || 'USD';
  const balance = upstream.balance;
  const thresholdInput = h('input', {
    type: 'text',
    inputmode: 'decimal',
    id: `threshold-${upstream.provider}`,
    class: 'input small',
    value: upstream.balance_low_minor ? minorToDecimal(upstream.balance_low_minor, currency) : '',
    placeholder: 'default',
    'aria-label': `Low-balance alert threshold for ${upstream.provider}`,
  });
  const saveThreshold = h('button', { type: 'button', class: 'button ghost small' }, 'Save threshold');
  saveThreshold.addEventListener('click', () => {
    const text = thresholdInput.value.trim();
    // Empty: back to the configured default (UPSTREAM_BALANCE_LOW_MINOR).
    const parsed = text === '' ? { ok: true, minor: null } : parseMajorToMinor(text, currency);
    if (!parsed.ok || (parsed.minor !== null && parsed.minor < 0)) {
      toast(parsed.error ?? 'Enter an amount such as 50.00, or leave it empty for the default.', 'error');
      return;
    }
    const minor = parsed.minor;
    onChange(upstream.provider, { balance_low_minor: minor });
  });
  return h(
    'section',
    { class: 'card upstream', dataset: { provider: upstream.provider, mode: upstream.mode }, 'aria-labelledby': `upstream-${upstream.provider}` },
    h(
      'div',
      { class: 'section-head' },
      h('h2', { id: `upstream-${upstream.provider}`, class: 'card-title' }, upstream.provider, upstream.configured ? null : h('span', { class: 'badge badge-warn' }, 'not configured')),
      h(
        'div',
        { class: 'button-row' },
        ACTIONS.filter((a) => a.mode !== upstream.mode).map((a) =>
          h('button', { type: 'button', class: a.class, dataset: { action: a.mode }, onclick: () => onChange(upstream.provider, { mode: a.mode }) }, a.label),
        ),
      ),
    ),
    h(
      'dl',
      { class: 'health-grid' },
      h('div', { class: 'health-item' }, h('dt', null, 'Mode'), h('dd', null, h('span', { class: `badge ${MODE_BADGES[upstream.mode]}`, dataset: { role: 'mode' } }, MODE_LABELS[upstream.mode] ?? upstream.mode))),
      h(
        'div',
        { class: 'health-item' },
        h('dt', null, 'Circuit breaker'),
        h('dd', null, upstream.breaker ? h('span', { class: `badge badge-breaker-${upstream.breaker}` }, BREAKER_LABELS[upstream.breaker] ?? upstream.breaker) : '—'),
      ),
      h(
        'div',
        { class: 'health-item' },
        h('dt', null, 'Balance at the upstream'),
        h(
          'dd',
          { dataset: { role: 'balance' } },
          balance && balance.amount_minor !== null ? formatMoney(balance.amount_minor, balance.currency || 'USD') : 'not stated',
          upstream.balance_low ? h('span', { class: 'badge badge-fail' }, 'Low') : null,
          balance && !balance.live ? h('span', { class: 'hint' }, ` read ${formatDateTime(balance.read_at)}`) : null,
        ),
      ),
      h(
        'div',
        { class: 'health-item' },
        h('dt', null, 'Owed cancels'),
        h('dd', { dataset: { role: 'owed' } }, `${upstream.cancels_owed.count} · up to ${formatMoney(upstream.cancels_owed.value_minor, currency)}`),
      ),
    ),
    h('div', { class: 'button-row' }, h('label', { for: thresholdInput.id }, 'Alert below'), thresholdInput, saveThreshold),
    upstream.changed_at ? h('p', { class: 'hint' }, `Last changed ${formatDateTime(upstream.changed_at)}.`) : null,
    offersTable(upstream),
  );
}

export async function render(main, ctx) {
  main.append(
    pageHeader(
      'Upstreams',
      'Switch an upstream off at once (disable), wind it down (drain) or back on. Orders it already sold settle in every mode.',
    ),
  );
  const errors = errorBox('upstreams-error');
  const body = h('div', { id: 'upstreams', 'aria-live': 'polite' }, loading('Loading upstreams…'));
  main.append(errors.el, body);

  async function load() {
    const { upstreams } = await api.get('/v1/admin/upstreams', { signal: ctx.signal });
    if (!ctx.isCurrent()) return;
    fill(body, upstreams.length ? upstreams.map((u) => upstreamCard(u, change)) : emptyState('No upstreams.'));
  }

  async function change(provider, patch) {
    errors.clear();
    for (const button of body.querySelectorAll('button')) button.disabled = true;
    try {
      const { upstream } = await api.put(`/v1/admin/upstreams/${encodeURIComponent(provider)}`, patch);
      toast(patch.mode ? `${provider}: ${MODE_LABELS[upstream.mode]}` : `${provider}: threshold saved`, 'success');
      await load();
    } catch (error) {
      if (!ctx.isCurrent()) return;
      errors.show(describeError(error));
      for (const button of body.querySelectorAll('button')) button.disabled = false;
    }
  }

  await load();
}
