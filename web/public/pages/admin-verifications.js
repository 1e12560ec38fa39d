// Operator: search every customer's verifications by state, email and service.
import { h, fill } from '../dom.js';
import { api, withQuery } from '../api.js';
import { loadServices } from '../services.js';
import { STATE_LABELS } from '../format.js';
import { historyItem } from './history.js';
import { pageHeader, pager, emptyState } from '../ui.js';

export async function render(main) {
  main.append(pageHeader('All verifications', 'Every customer’s verifications, with their audit trail.'));

  const stateSelect = h('select', { id: 'filter-state', name: 'state' }, h('option', { value: '' }, 'Any state'), Object.entries(STATE_LABELS).map(([value, label]) => h('option', { value }, label)));
  const email = h('input', { type: 'search', id: 'filter-email', name: 'email', placeholder: 'customer@example.com', autocomplete: 'off' });
  const service = h('input', { type: 'search', id: 'filter-service', name: 'service', placeholder: 'e.g. whatsapp', autocomplete: 'off', list: 'service-options' });
  const serviceOptions = h('datalist', { id: 'service-options' });
  const form = h(
    'form',
    { class: 'filters', role: 'search' },
    h('div', { class: 'field' }, h('label', { for: 'filter-state' }, 'State'), stateSelect),
    h('div', { class: 'field grow' }, h('label', { for: 'filter-email' }, 'Customer email'), email),
    h('div', { class: 'field grow' }, h('label', { for: 'filter-service' }, 'Service'), service, serviceOptions),
    h('button', { type: 'submit', class: 'button' }, 'Search'),
  );
  const list = h('ul', { class: 'history-list', id: 'admin-verification-list' });
  const empty = emptyState('No verifications match these filters.');
  empty.hidden = true;
  const body = h('section', { class: 'card list-card', 'aria-label': 'Results' }, list, empty);
  main.append(form, body);

  loadServices()
    .then((services) => fill(serviceOptions, [...new Set(services.map((s) => s.service))].map((s) => h('option', { value: s }))))
    .catch(() => {});

  let count = 0;
  const page = pager(
    (cursor) => api.get(withQuery('/v1/admin/verifications', { state: stateSelect.value, email: email.value.trim(), service: service.value.trim(), cursor })),
    (items, reset) => {
      if (reset) {
        list.replaceChildren();
        count = 0;
      }
      for (const v of items) list.append(historyItem(v, { showUser: true }).el);
      count += items.length;
      empty.hidden = count > 0;
    },
  );
  body.append(page.el);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    page.load(true).catch(() => {});
  });
  await page.load(true).catch(() => {});
}
