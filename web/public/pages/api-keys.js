// API keys: create (the secret is shown once), list, revoke.
import { h, fill } from '../dom.js';
import { api } from '../api.js';
import { formatDateTime } from '../format.js';
import { describeError } from '../errors.js';
import { pageHeader, errorBox, field, copyButton, emptyState, toast } from '../ui.js';
import { withRecentSignIn } from '../reauth.js';

export async function render(main, ctx) {
  main.append(pageHeader('API keys', 'Keys let your scripts and bots buy numbers with Authorization: Bearer <key>. Treat them like passwords.'));

  const errors = errorBox('api-key-error');
  const name = field({
    id: 'api-key-name',
    label: 'Key name',
    control: h('input', { type: 'text', name: 'name', maxlength: '100', required: true, autocomplete: 'off', placeholder: 'e.g. signup-bot' }),
    hint: 'So you can tell your keys apart later.',
  });
  const createButton = h('button', { type: 'submit', class: 'button primary' }, 'Create key');
  const form = h('form', { class: 'inline-form', novalidate: true }, name.el, createButton);
  const reveal = h('div', { class: 'key-reveal-holder', 'aria-live': 'polite' });

  const tbody = h('tbody', { id: 'api-keys' });
  const table = h(
    'table',
    { class: 'table responsive' },
    h('caption', { class: 'visually-hidden' }, 'Your API keys'),
    h('thead', null, h('tr', null, ['Name', 'Key', 'Created', 'Last used', 'Status', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody,
  );
  const empty = emptyState('No API keys yet.');
  main.append(
    h('section', { class: 'card', 'aria-labelledby': 'new-key-title' }, h('h2', { id: 'new-key-title', class: 'card-title' }, 'New key'), errors.el, form, reveal),
    h('section', { class: 'card list-card', 'aria-labelledby': 'keys-title' }, h('h2', { id: 'keys-title', class: 'card-title' }, 'Your keys'), h('div', { class: 'table-wrap' }, table), empty),
  );

  function keyRow(k) {
    const revoked = Boolean(k.revoked_at);
    const actions = h('td', { 'data-label': 'Actions', class: 'actions-cell' });
    const revoke = h('button', { type: 'button', class: 'button danger-ghost small' }, 'Revoke', h('span', { class: 'visually-hidden' }, ` key ${k.name}`));
    function showConfirm() {
      const confirm = h('button', { type: 'button', class: 'button danger small' }, 'Yes, revoke');
      const keep = h('button', { type: 'button', class: 'button ghost small' }, 'Keep');
      keep.addEventListener('click', () => {
        fill(actions, revoke);
        revoke.focus();
      });
      confirm.addEventListener('click', async () => {
        confirm.disabled = true;
        keep.disabled = true;
        try {
          await api.delete(`/v1/api-keys/${encodeURIComponent(k.id)}`);
          toast(`Key “${k.name}” revoked. Requests using it are refused from now on.`);
          await load();
        } catch (error) {
          errors.show(describeError(error));
          confirm.disabled = false;
          keep.disabled = false;
        }
      });
      fill(actions, h('span', { class: 'confirm-text' }, 'Revoke this key?'), confirm, keep);
      confirm.focus();
    }
    revoke.addEventListener('click', showConfirm);
    if (!revoked) actions.append(revoke);
    return h(
      'tr',
      { dataset: { id: k.id }, class: revoked ? 'is-revoked' : '' },
      h('td', { 'data-label': 'Name' }, k.name),
      h('td', { 'data-label': 'Key' }, h('code', null, `${k.prefix}…`)),
      h('td', { 'data-label': 'Created', class: 'nowrap' }, formatDateTime(k.created_at)),
      h('td', { 'data-label': 'Last used' }, k.last_used_at ? formatDateTime(k.last_used_at) : 'Never'),
      h('td', { 'data-label': 'Status' }, revoked ? h('span', { class: 'badge badge-cancelled' }, 'Revoked') : h('span', { class: 'badge badge-received' }, 'Active')),
      actions,
    );
  }

  async function load() {
    try {
      const data = await api.get('/v1/api-keys');
      if (!ctx.isCurrent()) return;
      const items = data.items ?? [];
      fill(tbody, items.map(keyRow));
      empty.hidden = items.length > 0;
      table.hidden = items.length === 0;
    } catch (error) {
      errors.show(describeError(error));
    }
  }

  let creating = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (creating) return;
    errors.clear();
    name.setError(null);
    const value = name.control.value.trim();
    if (!value) {
      name.setError('Give the key a name.');
      name.control.focus();
      return;
    }
    creating = true;
    createButton.disabled = true;
    createButton.textContent = 'Creating…';
    try {
      const created = await withRecentSignIn(reveal, () => api.post('/v1/api-keys', { name: value }));
      const done = h('button', { type: 'button', class: 'button ghost small' }, 'I have saved it');
      const box = h(
        'div',
        { class: 'key-reveal', role: 'region', 'aria-label': 'Your new API key' },
        h('p', null, h('strong', null, `Key “${created.name}” created.`), ' Copy it now — it will not be shown again.'),
        h('div', { class: 'key-line' }, h('code', { class: 'key-secret', id: 'new-api-key' }, created.key), copyButton(() => created.key, 'Copy API key', 'API key')),
        done,
      );
      done.addEventListener('click', () => {
        reveal.replaceChildren();
        name.control.focus();
      });
      fill(reveal, box);
      name.control.value = '';
      await load();
    } catch (error) {
      if (error?.message !== 'cancelled') errors.show(describeError(error));
    } finally {
      creating = false;
      createButton.disabled = false;
      createButton.textContent = 'Create key';
    }
  });

  await load();
}
