// The audit trail of a verification (`events[]`) as an ordered list.
import { h } from '../dom.js';
import { formatDateTime, formatTime } from '../format.js';

const ACTORS = {
  customer: 'you',
  poller: 'provider check',
  sweeper: 'deadline',
  webhook: 'provider webhook',
  admin: 'operator',
  reconciler: 'reconciliation',
  recovery: 'recovery',
  system: 'system',
};

export function transitionLabel(event) {
  switch (event.to) {
    case 'pending':
      return 'Purchase started — price held';
    case 'waiting':
      return 'Number assigned — waiting for the SMS';
    case 'received':
      return 'Code received — charged';
    case 'cancelled':
      return 'Cancelled — hold refunded';
    case 'expired':
      return 'Expired without a code — hold refunded';
    case 'failed':
      return 'Purchase failed — not charged';
    default:
      return event.from ? `${event.from} → ${event.to}` : String(event.to);
  }
}

export function timeline(events) {
  const list = h('ol', { class: 'timeline' });
  const sorted = [...(events ?? [])].sort((a, b) => String(a.at).localeCompare(String(b.at)));
  for (const event of sorted) {
    list.append(
      h(
        'li',
        { class: `timeline-item timeline-${event.to}` },
        h('span', { class: 'timeline-dot', 'aria-hidden': 'true' }),
        h(
          'div',
          { class: 'timeline-body' },
          h('p', { class: 'timeline-title' }, transitionLabel(event)),
          h(
            'p',
            { class: 'timeline-meta' },
            h('time', { datetime: event.at, title: formatDateTime(event.at) }, formatTime(event.at)),
            ` · by ${ACTORS[event.actor] ?? event.actor ?? 'system'}`,
            event.from ? ` · ${event.from} → ${event.to}` : ` · ${event.to}`,
            event.reason ? ` · ${event.reason}` : '',
          ),
        ),
      ),
    );
  }
  if (!sorted.length) list.append(h('li', { class: 'timeline-item' }, h('p', { class: 'timeline-meta' }, 'No events recorded yet.')));
  return list;
}
