// Notifications: codes received and refunds issued, with "mark read".
import { h } from '../dom.js';
import { api } from '../api.js';
import { on } from '../live.js';
import { setState } from '../state.js';
import { formatDateTime } from '../format.js';
import { describeError } from '../errors.js';
import { pageHeader, emptyState, errorBox, toast } from '../ui.js';

export async function render(main, ctx) {
  const markAll = h('button', { type: 'button', class: 'button ghost small', id: 'mark-all-read' }, 'Mark all as read');
  main.append(pageHeader('Notifications', 'Codes that arrived, refunds that were issued, and notices about your account’s security.', markAll));
  const errors = errorBox();
  const list = h('ul', { class: 'notification-list', id: 'notification-list' });
  const empty = emptyState('Nothing here yet. You will be notified when a code arrives or a refund is issued.');
  main.append(errors.el, h('section', { class: 'card list-card', 'aria-label': 'Notifications' }, list, empty));

  const items = new Map();

  function syncUnread() {
    const unread = [...items.values()].filter((n) => !n.read_at).length;
    setState({ unread });
    markAll.disabled = unread === 0;
    empty.hidden = items.size > 0;
  }

  function row(n) {
    const readButton = h('button', { type: 'button', class: 'button ghost small' }, 'Mark read', h('span', { class: 'visually-hidden' }, `: ${n.title}`));
    readButton.hidden = Boolean(n.read_at);
    readButton.addEventListener('click', () => markRead(n.id, readButton));
    return h(
      'li',
      { class: `notification ${n.read_at ? 'is-read' : 'is-unread'}`, dataset: { id: n.id, kind: n.kind } },
      h('span', { class: 'unread-dot', 'aria-hidden': 'true' }),
      h(
        'div',
        { class: 'notification-body' },
        h('p', { class: 'notification-title' }, n.read_at ? null : h('span', { class: 'visually-hidden' }, 'Unread: '), n.title),
        n.body ? h('p', { class: 'notification-text' }, n.body) : null,
        h(
          'p',
          { class: 'notification-meta' },
          h('time', { datetime: n.created_at }, formatDateTime(n.created_at)),
          n.verification_id ? ' · ' : null,
          n.verification_id ? h('a', { href: `#/verifications/${encodeURIComponent(n.verification_id)}` }, 'View verification') : null,
        ),
      ),
      readButton,
    );
  }

  function upsert(n, atTop) {
    const existing = list.querySelector(`[data-id="${CSS.escape(n.id)}"]`);
    items.set(n.id, n);
    const el = row(n);
    if (existing) existing.replaceWith(el);
    else if (atTop) list.prepend(el);
    else list.append(el);
  }

  async function markRead(id, button) {
    if (button) button.disabled = true;
    try {
      const updated = await api.post(`/v1/notifications/${encodeURIComponent(id)}/read`, {});
      upsert({ ...items.get(id), ...(updated ?? {}), read_at: updated?.read_at ?? new Date().toISOString() });
      syncUnread();
      return true;
    } catch (error) {
      if (button) button.disabled = false;
      errors.show(describeError(error));
      return false;
    }
  }

  markAll.addEventListener('click', async () => {
    markAll.disabled = true;
    errors.clear();
    const unread = [...items.values()].filter((n) => !n.read_at);
    let ok = 0;
    for (const n of unread) if (await markRead(n.id)) ok += 1;
    if (ok) toast(ok === 1 ? '1 notification marked as read.' : `${ok} notifications marked as read.`);
    syncUnread();
  });

  ctx.onCleanup(
    on('notification', (n) => {
      upsert(n, true);
      syncUnread();
    }),
  );

  try {
    const page = await api.get('/v1/notifications');
    if (!ctx.isCurrent()) return;
    for (const n of page.items ?? []) if (!items.has(n.id)) upsert(n, false);
  } catch (error) {
    errors.show(describeError(error));
  }
  syncUnread();
}
