// History: every verification, newest first, each with its audit timeline.
import { h, fill } from '../dom.js';
import { api, withQuery } from '../api.js';
import { on } from '../live.js';
import { loadServices, serviceLabel } from '../services.js';
import { countryName, formatDateTime, formatMoney, formatPhone, STATE_LABELS } from '../format.js';
import { timeline } from '../components/timeline.js';
import { pageHeader, pager, stateBadge, emptyState } from '../ui.js';

export function outcome(v) {
  if (v.state === 'failed') return { text: 'Not charged', kind: 'none' };
  if (v.refunded) return { text: 'Refunded', kind: 'refunded' };
  if (v.state === 'received') return { text: 'Charged', kind: 'charged' };
  if (v.state === 'pending' || v.state === 'waiting') return { text: 'Held', kind: 'held' };
  return { text: 'Refund pending', kind: 'held' };
}

export function historyItem(v, { showUser = false } = {}) {
  const result = outcome(v);
  const timelineHolder = h('div', { class: 'timeline-holder' });
  const details = h('details', { class: 'history-details' }, h('summary', null, 'Timeline'), timelineHolder);
  let rendered = false;
  details.addEventListener('toggle', () => {
    if (details.open && !rendered) {
      rendered = true;
      fill(timelineHolder, timeline(v.events));
    }
  });
  const item = h(
    'li',
    { class: 'history-item', dataset: { id: v.id, state: v.state } },
    h(
      'div',
      { class: 'history-main' },
      h(
        'div',
        { class: 'history-what' },
        h('a', { href: `#/verifications/${encodeURIComponent(v.id)}`, class: 'history-service' }, serviceLabel(v.service)),
        h('span', { class: 'history-sub' }, [countryName(v.country), v.phone_number ? formatPhone(v.phone_number) : null, formatDateTime(v.created_at)].filter(Boolean).join(' · ')),
        showUser && v.user_email ? h('span', { class: 'history-user' }, v.user_email) : null,
      ),
      h('div', { class: 'history-code' }, v.code ? h('span', null, h('span', { class: 'visually-hidden' }, 'Code '), h('strong', { class: 'code-chip' }, v.code)) : null),
      h(
        'div',
        { class: 'history-status' },
        stateBadge(v.state),
        h('span', { class: `money money-${result.kind}` }, formatMoney(v.price_minor, v.currency), ' ', h('span', { class: 'money-note' }, result.text.toLowerCase())),
      ),
    ),
    details,
  );
  return {
    el: item,
    openTimeline() {
      details.open = true;
      rendered = true;
      fill(timelineHolder, timeline(v.events));
    },
  };
}

export async function render(main, ctx) {
  const stateFilter = h(
    'select',
    { id: 'history-state', name: 'state' },
    h('option', { value: '' }, 'All states'),
    Object.entries(STATE_LABELS).map(([value, label]) => h('option', { value }, label)),
  );
  const filters = h('form', { class: 'filters', role: 'search' }, h('div', { class: 'field' }, h('label', { for: 'history-state' }, 'Show'), stateFilter));
  main.append(pageHeader('History', 'Every number you have bought, what it cost, and everything that happened to it.'), filters);

  const list = h('ul', { class: 'history-list', id: 'history-list' });
  const empty = emptyState('No verifications yet. Numbers you buy will be listed here.');
  empty.hidden = true;
  const items = new Map();

  await loadServices().catch(() => null);
  const page = pager(
    (cursor) => api.get(withQuery('/v1/verifications', { state: stateFilter.value, cursor, limit: 25 })),
    (rows, reset) => {
      if (reset) {
        list.replaceChildren();
        items.clear();
      }
      for (const v of rows) {
        if (items.has(v.id)) continue;
        const item = historyItem(v);
        items.set(v.id, item);
        list.append(item.el);
      }
      empty.hidden = items.size > 0;
    },
  );
  main.append(h('section', { class: 'card list-card', 'aria-label': 'Verifications' }, list, empty, page.el));
  stateFilter.addEventListener('change', () => page.load(true).catch(() => {}));

  // Keep rows current while the page is open.
  ctx.onCleanup(
    on('verification', (v) => {
      const existing = items.get(v.id);
      if (!existing) {
        if (!stateFilter.value || stateFilter.value === v.state) {
          const item = historyItem(v);
          items.set(v.id, item);
          list.prepend(item.el);
          empty.hidden = true;
        }
        return;
      }
      const wasOpen = existing.el.querySelector('details')?.open;
      const replacement = historyItem(v);
      existing.el.replaceWith(replacement.el);
      items.set(v.id, replacement);
      if (wasOpen) replacement.openTimeline();
    }),
  );
  await page.load(true).catch(() => {});
}
