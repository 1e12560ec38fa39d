// The local outbox: mail kept instead of sent when no SMTP_URL is configured.
import { h, fill } from '../dom.js';
import { api, withQuery } from '../api.js';
import { formatDateTime } from '../format.js';
import { pageHeader, emptyState, pager } from '../ui.js';

export async function render(main, ctx) {
  main.append(pageHeader('Mail outbox', 'With no SMTP_URL set, account emails (verification and reset links) are kept here instead of sent. They hold working links: pass them on only to their owner.'));
  const notice = h('div', { role: 'status' });
  const list = h('div', { class: 'stack', id: 'outbox' });
  const empty = emptyState('The outbox is empty.');
  const more = pager(
    (cursor) => api.get(withQuery('/v1/admin/mail', { cursor, limit: 20 })),
    (items, reset) => {
      if (!ctx.isCurrent()) return;
      if (reset) list.replaceChildren();
      for (const m of items) {
        list.append(
          h('article', { class: 'card mail', dataset: { id: m.id } },
            h('h2', { class: 'card-title' }, m.subject),
            h('p', { class: 'hint' }, `To ${m.to} · ${formatDateTime(m.created_at)}`),
            h('pre', { class: 'mail-body' }, m.body),
          ),
        );
      }
      empty.hidden = list.childElementCount > 0;
    },
  );
  main.append(notice, list, empty, more.el);
  const first = await api.get(withQuery('/v1/admin/mail', { limit: 1 }));
  if (first.transport === 'smtp') fill(notice, h('div', { class: 'alert alert-info' }, h('p', null, 'SMTP_URL is set: mail is sent, and only what was kept before appears here.')));
  await more.load(true);
}
