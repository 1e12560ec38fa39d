// The page a processor sends the customer back to: the top-up, followed live from "waiting for
// payment" to "credited". Coming back here credits nothing by itself; the processor's confirmation does.
import { h, fill } from '../dom.js';
import { api } from '../api.js';
import { on } from '../live.js';
import { refreshWallet } from '../session.js';
import { formatDateTime, formatMoney } from '../format.js';
import { pageHeader } from '../ui.js';
import { topUpBadge } from './top-ups.js';

const EXPLAIN = {
  pending: 'Waiting for the payment provider to confirm your payment. This page updates by itself.',
  credited: 'Your wallet has been credited.',
  failed: 'The payment did not go through. Nothing was charged; you can try again.',
  expired: 'The checkout was not completed in time. Nothing was charged; you can start a new top-up.',
  review: 'The payment did not match this top-up. Our team reviews it; nothing is lost.',
};

export async function render(main, ctx) {
  const id = ctx.params.id;
  const body = h('section', { class: 'card top-up-status', id: 'top-up-status', 'aria-live': 'polite' });
  main.append(pageHeader('Top-up', null, h('a', { href: '#/top-ups', class: 'subtle-link' }, 'Add funds')), body);

  function show(t) {
    fill(
      body,
      h('p', { class: 'stat-value', id: 'top-up-amount' }, formatMoney(t.amount_minor, t.currency)),
      h('p', null, topUpBadge(t.status)),
      h('p', { id: 'top-up-explain' }, EXPLAIN[t.status] ?? ''),
      t.status === 'credited' ? h('p', { class: 'hint' }, `Credited ${formatMoney(t.credited_minor, t.currency)} on ${formatDateTime(t.credited_at)}.`) : null,
      t.reversed_minor > 0 ? h('p', { class: 'hint' }, `${formatMoney(t.reversed_minor, t.currency)} was refunded or disputed at the provider and taken back.`) : null,
      t.status === 'pending' && t.checkout_url ? h('p', null, h('a', { href: t.checkout_url, class: 'button ghost' }, 'Continue to payment')) : null,
      t.status === 'credited' ? h('p', null, h('a', { href: '#/buy', class: 'button primary' }, 'Buy a number')) : null,
    );
    if (t.status === 'credited') refreshWallet();
  }
  const load = async () => show(await api.get(`/v1/top-ups/${encodeURIComponent(id)}`, { signal: ctx.signal }));
  ctx.onCleanup(on('top_up', (t) => {
    if (t.id === id) show(t);
  }));
  // After a reconnect, whatever happened meanwhile is read again.
  ctx.onCleanup(on('open', () => load().catch(() => {})));
  await load();
}
