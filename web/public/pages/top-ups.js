// Add funds: preset amounts (or your own), the processor, then off to its checkout. Below, every
// top-up with its status. The wallet is credited only when the processor confirms the payment.
import { h } from '../dom.js';
import { api, request, withQuery, newIdempotencyKey } from '../api.js';
import { on } from '../live.js';
import { state } from '../state.js';
import { describeError } from '../errors.js';
import { formatDateTime, formatMoney, parseMajorToMinor } from '../format.js';
import { pageHeader, pager, emptyState, errorBox, field } from '../ui.js';

const PRESETS = [500, 1000, 2500, 5000, 10000];

export const TOP_UP_LABELS = {
  pending: 'Waiting for payment',
  credited: 'Credited',
  failed: 'Failed',
  expired: 'Expired',
  review: 'Under review',
};
const BADGE = { pending: 'pending', credited: 'received', failed: 'failed', expired: 'failed', review: 'refunded' };
const PROCESSOR_LABELS = { sandbox: 'Sandbox (test payments)', stripe: 'Card (Stripe)', paystack: 'Paystack' };

export function topUpBadge(status) {
  return h('span', { class: `badge badge-${BADGE[status] ?? 'pending'}`, dataset: { status } }, TOP_UP_LABELS[status] ?? status);
}

function topUpRow(t) {
  return h(
    'tr',
    { dataset: { id: t.id, status: t.status } },
    h('td', { 'data-label': 'Date', class: 'nowrap' }, h('time', { datetime: t.created_at }, formatDateTime(t.created_at))),
    h('td', { 'data-label': 'Amount', class: 'num' }, formatMoney(t.amount_minor, t.currency)),
    h('td', { 'data-label': 'Via' }, PROCESSOR_LABELS[t.processor] ?? t.processor),
    h('td', { 'data-label': 'Status' }, topUpBadge(t.status), t.reversed_minor > 0 ? h('span', { class: 'amount-note' }, ` ${formatMoney(t.reversed_minor, t.currency)} refunded`) : null),
    h('td', { 'data-label': 'Details' }, h('a', { href: `#/top-ups/${encodeURIComponent(t.id)}` }, 'Details')),
  );
}

export async function render(main, ctx) {
  main.append(pageHeader('Add funds', 'Choose an amount and pay at the payment provider. Your wallet is credited as soon as the provider confirms the payment.'));
  const first = await api.get(withQuery('/v1/top-ups', { limit: 20 }), { signal: ctx.signal });
  const currency = state.wallet?.currency || first.items[0]?.currency || 'USD';
  const min = first.min_amount_minor;
  const max = first.max_amount_minor;

  let chosen = PRESETS.find((p) => p >= min && p <= max) ?? min;
  const presets = PRESETS.filter((p) => p >= min && p <= max);
  const presetButtons = presets.map((amount) => {
    const button = h('button', { type: 'button', class: 'button ghost preset', 'aria-pressed': String(amount === chosen), dataset: { amount: String(amount) } }, formatMoney(amount, currency));
    button.addEventListener('click', () => choose(amount));
    return button;
  });
  const custom = field({
    id: 'top-up-amount',
    label: 'Amount',
    control: h('input', { type: 'text', inputmode: 'decimal', autocomplete: 'off', value: formatMoney(chosen, currency).replace(/[^\d.,]/g, '') }),
    hint: `Between ${formatMoney(min, currency)} and ${formatMoney(max, currency)}.`,
  });
  const processorSelect = h(
    'select',
    { id: 'top-up-processor', name: 'processor' },
    ...first.processors.map((p) => h('option', { value: p }, PROCESSOR_LABELS[p] ?? p)),
  );
  const payButton = h('button', { type: 'submit', class: 'button primary wide', id: 'top-up-button' }, 'Continue to payment');
  const errors = errorBox('top-up-error');
  const receivable = first.receivable_minor > 0
    ? h('div', { class: 'alert alert-calm', role: 'status', id: 'receivable' },
        h('p', null, `${formatMoney(first.receivable_minor, currency)} is owed for a refunded or disputed top-up; your next top-up settles it first.`))
    : null;

  function choose(amount) {
    chosen = amount;
    custom.control.value = formatMoney(amount, currency).replace(/[^\d.,]/g, '');
    custom.setError(null);
    for (const b of presetButtons) b.setAttribute('aria-pressed', String(Number(b.dataset.amount) === amount));
  }
  custom.control.addEventListener('input', () => {
    for (const b of presetButtons) b.setAttribute('aria-pressed', 'false');
  });

  // One key per intended payment: pressing twice (or retrying after a network error) opens the same checkout.
  let idempotencyKey = newIdempotencyKey();
  const form = h(
    'form',
    { class: 'stack card top-up-form', novalidate: true, 'aria-labelledby': 'top-up-title' },
    h('h2', { id: 'top-up-title', class: 'card-title' }, 'Amount'),
    h('div', { class: 'presets', role: 'group', 'aria-label': 'Preset amounts' }, ...presetButtons),
    custom.el,
    first.processors.length > 1 ? h('div', { class: 'field' }, h('label', { for: 'top-up-processor' }, 'Pay with'), processorSelect) : null,
    receivable,
    errors.el,
    payButton,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.clear();
    const parsed = parseMajorToMinor(custom.control.value, currency);
    if (!parsed.ok || parsed.minor < min || parsed.minor > max) {
      custom.setError(parsed.ok ? `Enter an amount between ${formatMoney(min, currency)} and ${formatMoney(max, currency)}.` : parsed.error);
      custom.control.focus();
      return;
    }
    custom.setError(null);
    payButton.disabled = true;
    payButton.textContent = 'Opening checkout…';
    try {
      const { data } = await request('POST', '/v1/top-ups', {
        body: { amount_minor: parsed.minor, processor: processorSelect.value || undefined },
        idempotencyKey,
      });
      idempotencyKey = newIdempotencyKey();
      if (data.checkout_url) location.assign(data.checkout_url);
      else ctx.navigate(`#/top-ups/${data.id}`);
    } catch (error) {
      if (error?.body?.code === 'idempotency_key_reused') idempotencyKey = newIdempotencyKey();
      errors.show(describeError(error));
      payButton.disabled = false;
      payButton.textContent = 'Continue to payment';
    }
  });

  const tbody = h('tbody', { id: 'top-ups' });
  const table = h(
    'table',
    { class: 'table responsive' },
    h('caption', { class: 'visually-hidden' }, 'Your top-ups, newest first'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Date'), h('th', { scope: 'col', class: 'num' }, 'Amount'), h('th', { scope: 'col' }, 'Via'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Details')))),
    tbody,
  );
  const empty = emptyState('No top-ups yet.');
  const rowsById = new Map();
  function put(t, { prepend = false } = {}) {
    const row = topUpRow(t);
    const old = rowsById.get(t.id);
    if (old) old.replaceWith(row);
    else if (prepend) tbody.prepend(row);
    else tbody.append(row);
    rowsById.set(t.id, row);
    empty.hidden = rowsById.size > 0;
    table.hidden = rowsById.size === 0;
  }
  const page = pager(
    (cursor) => (cursor ? api.get(withQuery('/v1/top-ups', { cursor, limit: 20 })) : Promise.resolve(first)),
    (items) => items.forEach((t) => put(t)),
  );
  main.append(
    h('div', { class: 'buy-layout' }, form, h('section', { class: 'card list-card', 'aria-labelledby': 'top-up-history' }, h('h2', { id: 'top-up-history', class: 'card-title' }, 'Your top-ups'), h('div', { class: 'table-wrap' }, table), empty, page.el)),
  );
  ctx.onCleanup(on('top_up', (t) => put(t, { prepend: true })));
  await page.load(true).catch(() => {});
}
