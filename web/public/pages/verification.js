// One verification: the live card, its messages and the audit timeline.
import { h, fill } from '../dom.js';
import { api } from '../api.js';
import { loadServices, serviceLabel } from '../services.js';
import { verificationCard } from '../components/verification-card.js';
import { timeline } from '../components/timeline.js';
import { pageHeader, errorBox, loading } from '../ui.js';

export async function render(main, ctx) {
  const id = ctx.params.id;
  const header = pageHeader('Verification', null, h('a', { href: '#/history', class: 'button ghost small' }, '← History'));
  const body = h('div', { class: 'verification-page' }, loading());
  main.append(header, body);

  let v;
  try {
    [v] = await Promise.all([api.get(`/v1/verifications/${encodeURIComponent(id)}`), loadServices().catch(() => null)]);
  } catch (error) {
    if (!ctx.isCurrent()) return;
    const box = errorBox();
    box.show(error.code === 'not_found' ? 'This verification does not exist, or it belongs to another account.' : error);
    fill(body, box.el);
    return;
  }
  if (!ctx.isCurrent()) return;

  const title = header.querySelector('.page-title');
  title.textContent = `${serviceLabel(v.service)} verification`;
  document.title = `${serviceLabel(v.service)} verification · Namaskah`;

  const timelineHolder = h('div', { class: 'timeline-holder' }, timeline(v.events));
  const card = verificationCard(v, {
    onUpdate: (next) => fill(timelineHolder, timeline(next.events)),
  });
  ctx.onCleanup(() => card.destroy());

  fill(
    body,
    card.el,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'timeline-title' },
      h('h2', { id: 'timeline-title', class: 'card-title' }, 'Timeline'),
      h('p', { class: 'hint' }, 'Every change to this verification, with who made it and why.'),
      timelineHolder,
    ),
    h('p', { class: 'hint id-line' }, 'Verification id: ', h('code', null, v.id)),
  );
}
