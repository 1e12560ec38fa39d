// Operator: users with their balances, and a credit / adjustment form.
import { h, fill } from '../dom.js';
import { api, request, withQuery, newIdempotencyKey, ApiError } from '../api.js';
import { currency as walletCurrency, state } from '../state.js';
import { refreshWallet } from '../session.js';
import { formatDateTime, formatMoney, parseMajorToMinor, currencyDigits } from '../format.js';
import { describeError, outcomeUnknown } from '../errors.js';
import { pageHeader, pager, errorBox, field, emptyState, toast } from '../ui.js';

export async function render(main) {
  main.append(pageHeader('Users', 'Customers and their wallets. Credits and adjustments are recorded in the ledger with your name and the reason.'));

  const query = h('input', { type: 'search', id: 'user-query', name: 'query', placeholder: 'Email contains…', autocomplete: 'off' });
  const searchForm = h(
    'form',
    { class: 'filters', role: 'search' },
    h('div', { class: 'field grow' }, h('label', { for: 'user-query' }, 'Search users'), query),
    h('button', { type: 'submit', class: 'button' }, 'Search'),
  );
  const notice = h('div', { class: 'notice-holder', role: 'status', 'aria-live': 'polite' });
  const panel = h('div', { class: 'adjust-holder' });
  const errors = errorBox();
  const tbody = h('tbody', { id: 'admin-users' });
  const table = h(
    'table',
    { class: 'table responsive' },
    h('caption', { class: 'visually-hidden' }, 'Users and balances'),
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', { scope: 'col' }, 'Email'),
        h('th', { scope: 'col' }, 'Role'),
        h('th', { scope: 'col', class: 'num' }, 'Balance'),
        h('th', { scope: 'col', class: 'num' }, 'Held'),
        h('th', { scope: 'col', class: 'num' }, 'Available'),
        h('th', { scope: 'col' }, 'Joined'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')),
      ),
    ),
    tbody,
  );
  const empty = emptyState('No users match.');
  empty.hidden = true;
  const body = h('section', { class: 'card list-card', 'aria-label': 'Users' }, h('div', { class: 'table-wrap' }, table), empty);
  main.append(searchForm, notice, panel, errors.el, body);

  const rows = new Map();
  const cur = () => walletCurrency();

  function userRow(u) {
    const button = h('button', { type: 'button', class: 'button small' }, 'Credit / adjust', h('span', { class: 'visually-hidden' }, ` ${u.email}`));
    button.addEventListener('click', () => openAdjust(u, button));
    const c = u.currency || cur();
    return h(
      'tr',
      { dataset: { id: u.id, email: u.email } },
      h('td', { 'data-label': 'Email' }, h('span', { class: 'email' }, u.email)),
      h('td', { 'data-label': 'Role' }, u.role === 'admin' ? h('span', { class: 'badge badge-admin' }, 'Admin') : 'Customer'),
      h('td', { 'data-label': 'Balance', class: 'num', dataset: { col: 'balance' } }, formatMoney(u.balance_minor, c)),
      h('td', { 'data-label': 'Held', class: 'num', dataset: { col: 'held' } }, formatMoney(u.held_minor, c)),
      h('td', { 'data-label': 'Available', class: 'num', dataset: { col: 'available' } }, formatMoney(u.available_minor, c)),
      h('td', { 'data-label': 'Joined', class: 'nowrap' }, formatDateTime(u.created_at)),
      h('td', { class: 'actions-cell' }, button),
    );
  }

  function putRow(u) {
    const el = userRow(u);
    const existing = rows.get(u.id);
    if (existing) existing.el.replaceWith(el);
    else tbody.append(el);
    rows.set(u.id, { user: u, el });
  }

  // ---------------------------------------------------------------- credit / adjust
  function openAdjust(user, opener) {
    notice.replaceChildren();
    const c = user.currency || cur();
    const digits = currencyDigits(c);
    const formErrors = errorBox('adjust-error');
    const amount = field({
      id: 'adjust-amount',
      label: `Amount (${c})`,
      control: h('input', { type: 'text', name: 'amount', inputmode: 'decimal', autocomplete: 'off', required: true, placeholder: digits ? '25.00' : '25' }),
      hint: 'A positive amount credits the wallet; a negative amount (e.g. -5.00) adjusts it down.',
    });
    const reason = field({
      id: 'adjust-reason',
      label: 'Reason',
      control: h('input', { type: 'text', name: 'reason', required: true, maxlength: '500', autocomplete: 'off', placeholder: 'e.g. Bank transfer #1042' }),
      hint: 'Required. Saved in the ledger and shown to the customer.',
    });
    const preview = h('p', { class: 'preview', id: 'adjust-preview', 'aria-live': 'polite' });
    const submit = h('button', { type: 'submit', class: 'button primary' }, 'Apply');
    const close = h('button', { type: 'button', class: 'button ghost' }, 'Close');
    const form = h(
      'form',
      { class: 'stack', novalidate: true },
      h('div', { class: 'field-row' }, amount.el, reason.el),
      preview,
      formErrors.el,
      h('div', { class: 'button-row' }, submit, close),
    );
    const section = h(
      'section',
      { class: 'card adjust-panel', 'aria-labelledby': 'adjust-title' },
      h('h2', { id: 'adjust-title', class: 'card-title', tabindex: '-1' }, 'Credit or adjust ', h('span', { class: 'email' }, user.email)),
      h('p', { class: 'hint' }, `Available now: ${formatMoney(user.available_minor, c)} · Balance: ${formatMoney(user.balance_minor, c)}`),
      form,
    );
    fill(panel, section);
    amount.control.focus();

    function showPreview() {
      const parsed = parseMajorToMinor(amount.control.value, c);
      if (!amount.control.value.trim() || !parsed.ok) {
        preview.textContent = '';
        submit.textContent = 'Apply';
        return;
      }
      const abs = formatMoney(Math.abs(parsed.minor), c);
      preview.textContent = parsed.minor > 0 ? `Adds ${abs} to ${user.email}'s wallet.` : `Takes ${abs} from ${user.email}'s wallet.`;
      submit.textContent = parsed.minor > 0 ? `Credit ${abs}` : `Adjust down ${abs}`;
    }
    amount.control.addEventListener('input', showPreview);

    // One Idempotency-Key per submission: pressing the button again after a lost answer sends the
    // same key (the server applies it once); changing the amount or reason starts a new one.
    let submission = null;
    let busy = false;
    close.addEventListener('click', () => {
      panel.replaceChildren();
      opener?.focus();
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (busy) return;
      formErrors.clear();
      amount.setError(null);
      reason.setError(null);
      const parsed = parseMajorToMinor(amount.control.value, c);
      const reasonText = reason.control.value.trim();
      let invalid = null;
      if (!parsed.ok) {
        amount.setError(parsed.error);
        invalid ??= amount.control;
      }
      if (!reasonText) {
        reason.setError('Give a reason — it is recorded with the transfer.');
        invalid ??= reason.control;
      }
      if (invalid) {
        invalid.focus();
        return;
      }
      if (!submission || submission.amount !== parsed.minor || submission.reason !== reasonText) {
        submission = { key: newIdempotencyKey(), amount: parsed.minor, reason: reasonText };
      }
      busy = true;
      submit.disabled = true;
      submit.setAttribute('aria-busy', 'true');
      const label = submit.textContent;
      submit.textContent = 'Applying…';
      try {
        const { data } = await request('POST', `/v1/admin/users/${encodeURIComponent(user.id)}/credit`, {
          body: { amount_minor: submission.amount, reason: submission.reason },
          idempotencyKey: submission.key,
        });
        submission = null;
        const wallet = data?.wallet ?? {};
        const updated = { ...user, ...wallet };
        putRow(updated);
        const abs = formatMoney(Math.abs(parsed.minor), c);
        const message =
          parsed.minor > 0
            ? `Credited ${abs} to ${user.email}. Available balance is now ${formatMoney(updated.available_minor, c)}.`
            : `Adjusted ${user.email} down by ${abs}. Available balance is now ${formatMoney(updated.available_minor, c)}.`;
        panel.replaceChildren();
        fill(notice, h('div', { class: 'alert alert-success' }, h('p', null, message)));
        toast(message, 'success');
        if (user.id === state.user?.id) refreshWallet();
        rows.get(user.id)?.el.querySelector('button')?.focus();
      } catch (error) {
        const unknown = outcomeUnknown(error);
        if (!unknown) submission = null;
        let text = describeError(error);
        if (error instanceof ApiError && error.code === 'insufficient_funds') text = 'The wallet does not have that much available to adjust down.';
        if (error instanceof ApiError && error.code === 'not_found') text = 'This user no longer exists.';
        if (unknown) text += ' Pressing the button again is safe: the credit is applied at most once.';
        formErrors.show(text);
      } finally {
        busy = false;
        submit.disabled = false;
        submit.removeAttribute('aria-busy');
        if (submit.textContent === 'Applying…') submit.textContent = label;
      }
    });
  }

  // ---------------------------------------------------------------- list
  const page = pager(
    (cursor) => api.get(withQuery('/v1/admin/users', { query: query.value.trim(), cursor })),
    (items, reset) => {
      if (reset) {
        tbody.replaceChildren();
        rows.clear();
      }
      for (const u of items) putRow(u);
      empty.hidden = rows.size > 0;
      table.hidden = rows.size === 0;
    },
  );
  body.append(page.el);
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    page.load(true).catch(() => {});
  });
  await page.load(true).catch(() => {});
}
