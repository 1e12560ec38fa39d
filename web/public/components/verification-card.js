// A live verification: number with copy, countdown to expires_at, the code arriving through
// server-sent events, cancel, and what happened to the money (held / charged / refunded).
import { h, fill } from '../dom.js';
import { api, request, newIdempotencyKey } from '../api.js';
import { on, isLive } from '../live.js';
import { refreshWalletSoon } from '../session.js';
import { serviceLabel } from '../services.js';
import { describeError } from '../errors.js';
import { countryName, formatCountdown, formatMoney, formatPhone, formatTime, formatWait, phoneForCopy, TERMINAL_STATES } from '../format.js';
import { copyButton, errorBox, stateBadge, toast } from '../ui.js';

const POLL_MS = 3000;

/** Is `next` older news than `current`? Live events and fetches can cross on the wire. */
function isStale(current, next) {
  if (!current) return false;
  if (TERMINAL_STATES.has(current.state) && !TERMINAL_STATES.has(next.state)) return true;
  if (current.refunded && !next.refunded) return true;
  if ((next.events?.length ?? 0) < (current.events?.length ?? 0)) return true;
  if ((next.messages?.length ?? 0) < (current.messages?.length ?? 0)) return true;
  return false;
}

/**
 * verificationCard(v, { compact, headingLevel }) → { el, update(v), refresh(), destroy() }.
 * compact: a smaller card with a "Details" link (the Buy page list).
 */
export function verificationCard(initial, options = {}) {
  const compact = Boolean(options.compact);
  let v = null;
  let destroyed = false;
  let cancelLockedUntil = 0;
  let lastAnnouncedState = initial.state;
  let lastRefunded = Boolean(initial.refunded);
  let refreshing = false;

  const title = h(options.headingLevel ?? 'h2', { class: 'vcard-title' });
  const meta = h('p', { class: 'vcard-meta' });
  const badges = h('div', { class: 'vcard-badges' });
  const numberValue = h('span', { class: 'vcard-number-value' });
  const numberCopy = copyButton(() => phoneForCopy(v?.phone_number), 'Copy phone number', 'Phone number');
  const numberRow = h('div', { class: 'vcard-number' }, h('span', { class: 'vcard-label' }, 'Number'), h('div', { class: 'vcard-number-line' }, numberValue, numberCopy));
  // The code arrives here; the region exists from the start so screen readers announce the change.
  const codeRegion = h('div', { class: 'vcard-code', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const messages = h('div', { class: 'vcard-messages' });
  const countdownText = h('span', { class: 'vcard-countdown-text' });
  const progress = h('progress', { class: 'vcard-progress', max: '100', value: '100', 'aria-hidden': 'true' });
  const countdown = h('div', { class: 'vcard-countdown' }, countdownText, progress);
  const money = h('p', { class: 'vcard-money' });
  const cancelButton = h('button', { type: 'button', class: 'button danger-ghost cancel-button' }, 'Cancel and refund');
  const detailsLink = compact ? h('a', { class: 'button ghost small', href: `#/verifications/${encodeURIComponent(initial.id)}` }, 'Details') : null;
  // Number care: another code on the same number once a code arrived; a report of a bad number.
  const anotherButton = h('button', { type: 'button', class: 'button ghost small another-code-button' }, 'Get another code');
  const reportReason = h(
    'select',
    { class: 'report-reason', 'aria-label': 'Report reason' },
    h('option', { value: 'number_rejected' }, 'The service rejected this number'),
    h('option', { value: 'code_not_received' }, 'The code never came'),
  );
  const reportButton = h('button', { type: 'button', class: 'button ghost small report-button' }, 'Report number');
  const reportNote = h('p', { class: 'vcard-report hint', hidden: true });
  const actions = h('div', { class: 'vcard-actions' }, cancelButton, anotherButton, reportReason, reportButton, detailsLink);
  const errors = errorBox();

  const el = h(
    'article',
    { class: `vcard${compact ? ' vcard-compact' : ''}`, dataset: { id: initial.id }, 'aria-label': 'Verification' },
    h('header', { class: 'vcard-head' }, h('div', null, title, meta), badges),
    numberRow,
    codeRegion,
    messages,
    countdown,
    money,
    reportNote,
    errors.el,
    actions,
  );

  function renderCountdown() {
    if (!v) return;
    const terminal = TERMINAL_STATES.has(v.state);
    countdown.hidden = terminal || !v.expires_at;
    if (countdown.hidden) return;
    const expires = Date.parse(v.expires_at);
    const created = Date.parse(v.created_at);
    const remaining = expires - Date.now();
    if (remaining > 0) {
      countdownText.textContent = `Expires in ${formatCountdown(remaining)}`;
      countdownText.dataset.expired = 'false';
      const total = Math.max(1, expires - created);
      progress.value = Math.max(0, Math.min(100, Math.round((remaining / total) * 100)));
    } else {
      countdownText.textContent = 'Time is up — releasing your hold…';
      countdownText.dataset.expired = 'true';
      progress.value = 0;
    }
  }

  function renderCancel() {
    const canCancel = Boolean(v?.can_cancel);
    cancelButton.hidden = !canCancel;
    const wait = Math.ceil((cancelLockedUntil - Date.now()) / 1000);
    if (canCancel && wait > 0) {
      cancelButton.disabled = true;
      cancelButton.textContent = `Cancel available in ${formatWait(wait)}`;
    } else if (cancelButton.dataset.busy !== 'true') {
      cancelButton.disabled = false;
      cancelButton.textContent = 'Cancel and refund';
    }
    const received = v?.state === 'received';
    const reportable = Boolean(v?.phone_number) && (v?.state === 'waiting' || received) && reportNote.hidden;
    anotherButton.hidden = !received;
    reportReason.hidden = !reportable;
    reportButton.hidden = !reportable;
    actions.hidden = !canCancel && !detailsLink && !received && !reportable;
  }

  function render() {
    const price = formatMoney(v.price_minor, v.currency);
    el.dataset.state = v.state;
    title.textContent = serviceLabel(v.service);
    meta.textContent = [countryName(v.country), price, `bought ${formatTime(v.created_at)}`].filter(Boolean).join(' · ');
    // A failed purchase's hold is released too, but for the customer it simply never cost anything.
    const showRefund = v.refunded && v.state !== 'failed';
    fill(badges, stateBadge(v.state), showRefund ? h('span', { class: 'badge badge-refunded' }, 'Refunded') : null);

    // A failed purchase never had a number or a code; the money line says it all.
    numberRow.hidden = v.state === 'failed' && !v.phone_number;
    codeRegion.hidden = v.state === 'failed' && !v.code;
    if (v.phone_number) {
      numberValue.textContent = formatPhone(v.phone_number);
      numberValue.classList.remove('muted');
      numberCopy.hidden = false;
    } else {
      numberValue.textContent = v.state === 'failed' ? 'No number was assigned' : 'Getting a number…';
      numberValue.classList.add('muted');
      numberCopy.hidden = true;
    }

    if (v.code) {
      fill(
        codeRegion,
        h('span', { class: 'vcard-label' }, 'Code'),
        h('div', { class: 'vcard-code-line' }, h('strong', { class: 'vcard-code-value' }, v.code), copyButton(() => v.code, 'Copy code', 'Code')),
        h('span', { class: 'visually-hidden' }, `Code received: ${v.code}`),
      );
      codeRegion.dataset.received = 'true';
    } else if (v.state === 'waiting' || v.state === 'pending') {
      fill(codeRegion, h('span', { class: 'vcard-label' }, 'Code'), h('p', { class: 'vcard-waiting' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), v.state === 'pending' ? 'Getting your number…' : 'Waiting for the SMS…'));
      codeRegion.dataset.received = 'false';
    } else {
      const reason = { cancelled: 'Cancelled before a code arrived.', expired: 'No code arrived before the deadline.', failed: 'The purchase did not go through.' }[v.state] ?? '';
      fill(codeRegion, h('span', { class: 'vcard-label' }, 'Code'), h('p', { class: 'vcard-nocode' }, reason));
      codeRegion.dataset.received = 'false';
    }

    const list = (v.messages ?? []).filter((m) => m && (m.text || m.code));
    fill(
      messages,
      list.length
        ? h(
            'details',
            { class: 'vcard-messages-details', open: !compact || list.some((m) => m.late) ? true : undefined },
            h('summary', null, list.length === 1 ? '1 message' : `${list.length} messages`),
            h(
              'ul',
              { class: 'message-list' },
              list.map((m) =>
                h(
                  'li',
                  { class: 'message' },
                  h('p', { class: 'message-text' }, m.text || m.code),
                  h('p', { class: 'message-meta' }, formatTime(m.received_at), m.late ? h('span', { class: 'badge badge-late' }, 'Late — not charged') : null),
                ),
              ),
            ),
          )
        : null,
    );

    if (v.price_minor === 0) money.textContent = 'Free: another code on the same number.';
    else if (v.state === 'failed') money.textContent = 'The purchase did not go through. You were not charged.';
    else if (v.refunded) money.textContent = `Refunded ${price} to your wallet.`;
    else if (v.state === 'received') money.textContent = `Charged ${price}.`;
    else if (TERMINAL_STATES.has(v.state)) money.textContent = `Refund of ${price} on its way.`;
    else money.textContent = `${price} held — charged only if a code arrives.`;
    money.dataset.outcome = v.state === 'failed' ? 'none' : v.refunded ? 'refunded' : v.state === 'received' ? 'charged' : 'held';

    renderCountdown();
    renderCancel();
  }

  function announceChanges() {
    if (v.state !== lastAnnouncedState) {
      lastAnnouncedState = v.state;
      if (TERMINAL_STATES.has(v.state)) refreshWalletSoon();
    }
    if (v.refunded && !lastRefunded) {
      lastRefunded = true;
      if (v.state === 'failed') return;
      const message = `Refunded ${formatMoney(v.price_minor, v.currency)} for ${serviceLabel(v.service)}.`;
      toast(message, 'success');
      refreshWalletSoon();
    }
  }

  function update(next) {
    if (destroyed || !next || next.id !== initial.id || isStale(v, next)) return;
    v = next;
    render();
    announceChanges();
    options.onUpdate?.(v);
  }

  async function refresh() {
    if (refreshing || destroyed) return;
    refreshing = true;
    try {
      update(await api.get(`/v1/verifications/${encodeURIComponent(initial.id)}`));
    } catch {
      /* keep showing what we have; the next tick tries again */
    } finally {
      refreshing = false;
    }
  }

  cancelButton.addEventListener('click', async () => {
    if (cancelButton.dataset.busy === 'true') return;
    errors.clear();
    cancelButton.dataset.busy = 'true';
    cancelButton.disabled = true;
    cancelButton.textContent = 'Cancelling…';
    try {
      const result = await api.post(`/v1/verifications/${encodeURIComponent(initial.id)}/cancel`, {});
      update(result);
      refreshWalletSoon();
    } catch (error) {
      if (error.code === 'invalid_state' && error.problem?.verification) {
        update(error.problem.verification);
        errors.show(v.state === 'received' ? 'Your code arrived before the cancel went through, so the number was not cancelled. The code is shown above.' : describeError(error));
      } else if (error.code === 'cancel_too_early') {
        cancelLockedUntil = Date.now() + (error.retryAfterSeconds ?? 30) * 1000;
        errors.show(describeError(error));
      } else {
        errors.show(describeError(error));
      }
    } finally {
      cancelButton.dataset.busy = 'false';
      renderCancel();
    }
  });

  // One Idempotency-Key per click intent: a retried click after a lost answer asks once.
  let anotherKey = null;
  anotherButton.addEventListener('click', async () => {
    if (anotherButton.disabled) return;
    errors.clear();
    anotherButton.disabled = true;
    anotherKey ??= newIdempotencyKey();
    try {
      const { data: child } = await request('POST', `/v1/verifications/${encodeURIComponent(initial.id)}/another-code`, { body: {}, idempotencyKey: anotherKey });
      anotherKey = null;
      toast(`Asked for another code on ${formatPhone(child.phone_number)}.`, 'success');
      if (!compact) location.hash = `#/verifications/${encodeURIComponent(child.id)}`;
    } catch (error) {
      if (error.status) anotherKey = null;
      errors.show(describeError(error));
    } finally {
      anotherButton.disabled = false;
    }
  });

  const REFUND_TEXT = {
    none: 'Nothing was charged for it.',
    awaiting_upstream: 'Your charge is refunded once the provider refunds it.',
    refunded: 'Your charge was refunded.',
    declined: 'The provider does not refund it; the charge stands.',
  };
  reportButton.addEventListener('click', async () => {
    if (reportButton.disabled) return;
    errors.clear();
    reportButton.disabled = true;
    try {
      const report = await api.post(`/v1/verifications/${encodeURIComponent(initial.id)}/report`, { reason: reportReason.value });
      reportNote.textContent = `Number reported. ${REFUND_TEXT[report.refund] ?? ''} Your next purchase of this service will not get this number.`;
      reportNote.hidden = false;
      refreshWalletSoon();
      await refresh();
    } catch (error) {
      if (error.code === 'invalid_state') await refresh();
      errors.show(describeError(error));
    } finally {
      reportButton.disabled = false;
      renderCancel();
    }
  });

  // Live updates, with a quiet fallback: when the stream is down, or the deadline has passed and
  // the refund is due, fetch the verification every few seconds until it settles.
  const unsubscribe = [on('verification', update), on('open', refresh)];
  let lastPoll = Date.now();
  const timer = setInterval(() => {
    if (!v) return;
    renderCountdown();
    if (cancelLockedUntil) {
      renderCancel();
      if (Date.now() > cancelLockedUntil) cancelLockedUntil = 0;
    }
    if (TERMINAL_STATES.has(v.state) && (v.state === 'received' || v.refunded || v.state === 'failed')) return;
    const pastDeadline = v.expires_at && Date.parse(v.expires_at) <= Date.now();
    const needsPoll = !isLive() || pastDeadline || v.state === 'pending' || TERMINAL_STATES.has(v.state);
    if (needsPoll && Date.now() - lastPoll >= POLL_MS) {
      lastPoll = Date.now();
      refresh();
    }
  }, 1000);

  update(initial);

  return {
    el,
    update,
    refresh,
    get verification() {
      return v;
    },
    destroy() {
      destroyed = true;
      clearInterval(timer);
      unsubscribe.forEach((fn) => fn());
    },
  };
}
