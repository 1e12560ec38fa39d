// Wallet: balances and every transaction, newest first.
import { h } from '../dom.js';
import { api, withQuery } from '../api.js';
import { on } from '../live.js';
import { state, subscribe } from '../state.js';
import { refreshWallet } from '../session.js';
import { formatDateTime, formatMoney, TRANSACTION_LABELS } from '../format.js';
import { pageHeader, pager, emptyState } from '../ui.js';

function stat(label, id, note) {
  const value = h('p', { class: 'stat-value', id });
  return { value, el: h('div', { class: 'stat' }, h('p', { class: 'stat-label' }, label), value, note ? h('p', { class: 'stat-note' }, note) : null) };
}

function amountCell(t, currency) {
  const amount = Number(t.amount_minor);
  const gross = Number(t.gross_minor);
  // A charge settles what its hold already reserved: it does not move the available balance
  // again (amount 0), so show what was paid and say where it came from.
  if (t.type === 'verification_charge' && amount === 0 && Number.isSafeInteger(gross) && gross !== 0) {
    return h('td', { 'data-label': 'Amount', class: 'num amount amount-settled' }, formatMoney(gross, currency), h('span', { class: 'amount-note' }, 'paid from hold'));
  }
  return h('td', { 'data-label': 'Amount', class: `num amount ${amount > 0 ? 'amount-in' : amount < 0 ? 'amount-out' : ''}` }, formatMoney(amount, currency, { signed: true }));
}

function transactionRow(t, currency) {
  const link = t.verification_id ? h('a', { href: `#/verifications/${encodeURIComponent(t.verification_id)}` }, 'View verification') : null;
  return h(
    'tr',
    { dataset: { id: t.id, type: t.type } },
    h('td', { 'data-label': 'Date', class: 'nowrap' }, h('time', { datetime: t.created_at }, formatDateTime(t.created_at))),
    h('td', { 'data-label': 'Type' }, h('span', { class: `tx-type tx-${t.type}` }, TRANSACTION_LABELS[t.type] ?? t.type)),
    h('td', { 'data-label': 'Details' }, t.reason ? h('span', { class: 'tx-reason' }, t.reason) : null, t.reason && link ? ' · ' : null, link, !t.reason && !link ? '—' : null),
    amountCell(t, currency),
  );
}

export async function render(main, ctx) {
  const balance = stat('Balance', 'wallet-balance', 'Everything in your wallet');
  const held = stat('Held', 'wallet-held', 'Reserved for numbers waiting for a code');
  const available = stat('Available', 'wallet-available', 'What you can spend now');
  main.append(
    pageHeader('Wallet', 'Money is held when you buy a number, charged when its code arrives, and released back to you otherwise.'),
    h('section', { class: 'stats', 'aria-label': 'Balances' }, available.el, held.el, balance.el),
  );

  function showBalances() {
    const w = state.wallet;
    available.value.textContent = w ? formatMoney(w.available_minor, w.currency) : '—';
    held.value.textContent = w ? formatMoney(w.held_minor, w.currency) : '—';
    balance.value.textContent = w ? formatMoney(w.balance_minor, w.currency) : '—';
  }
  showBalances();
  ctx.onCleanup(subscribe(showBalances));
  refreshWallet();

  const tbody = h('tbody', { id: 'transactions' });
  const table = h(
    'table',
    { class: 'table responsive' },
    h('caption', { class: 'visually-hidden' }, 'Wallet transactions, newest first'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Date'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Details'), h('th', { scope: 'col', class: 'num' }, 'Amount'))),
    tbody,
  );
  const empty = emptyState('No transactions yet. Top-ups from your operator and your purchases will show here.');
  empty.hidden = true;
  const seen = new Set();
  const currency = () => state.wallet?.currency || 'USD';

  const page = pager(
    (cursor) => api.get(withQuery('/v1/wallet/transactions', { cursor, limit: 50 })),
    (items, reset) => {
      if (reset) {
        tbody.replaceChildren();
        seen.clear();
      }
      for (const t of items) {
        if (seen.has(t.id)) continue;
        seen.add(t.id);
        tbody.append(transactionRow(t, currency()));
      }
      empty.hidden = seen.size > 0;
      table.hidden = seen.size === 0;
    },
  );
  main.append(
    h('section', { class: 'card list-card', 'aria-labelledby': 'tx-title' }, h('h2', { id: 'tx-title', class: 'card-title' }, 'Transactions'), h('div', { class: 'table-wrap' }, table), empty, page.el),
  );

  // New money movements: put the newest ones on top without losing what was loaded.
  let timer = null;
  async function loadNewest() {
    try {
      const first = await api.get(withQuery('/v1/wallet/transactions', { limit: 20 }));
      const fresh = (first.items ?? []).filter((t) => !seen.has(t.id));
      for (const t of fresh.reverse()) {
        seen.add(t.id);
        tbody.prepend(transactionRow(t, currency()));
      }
      empty.hidden = seen.size > 0;
      table.hidden = seen.size === 0;
    } catch {
      /* next event tries again */
    }
  }
  ctx.onCleanup(
    subscribe(() => {
      clearTimeout(timer);
      timer = setTimeout(loadNewest, 300);
    }),
  );
  ctx.onCleanup(on('wallet', () => {
    clearTimeout(timer);
    timer = setTimeout(loadNewest, 300);
  }));
  ctx.onCleanup(() => clearTimeout(timer));
  await page.load(true).catch(() => {});
}
