// Webhook endpoints: create (the signing secret is shown once), list, enable/disable, rotate the
// secret, delete, and each endpoint's recent deliveries with their attempts and a re-send.
import { h, fill } from '../dom.js';
import { api, request } from '../api.js';
import { formatDateTime } from '../format.js';
import { describeError } from '../errors.js';
import { pageHeader, errorBox, field, copyButton, emptyState, toast } from '../ui.js';

const EVENT_TYPES = [
  ['verification.waiting', 'Number assigned'],
  ['verification.received', 'Code received'],
  ['verification.cancelled', 'Cancelled'],
  ['verification.expired', 'Expired'],
  ['verification.failed', 'Failed'],
  ['wallet.credited', 'Wallet credited'],
  ['top_up.credited', 'Top-up credited'],
  ['top_up.failed', 'Top-up failed'],
  ['top_up.expired', 'Top-up expired'],
];

const base = (id) => `/v1/webhook-endpoints/${encodeURIComponent(id)}`;

export async function render(main, ctx) {
  main.append(
    pageHeader(
      'Webhooks',
      'We POST signed events to your URL as they happen (Standard Webhooks: verify them with the standardwebhooks or svix libraries). Failed deliveries are retried for more than a day.',
    ),
  );

  const errors = errorBox('webhook-error');
  const url = field({
    id: 'webhook-url',
    label: 'Endpoint URL',
    control: h('input', { type: 'url', name: 'url', maxlength: '2048', required: true, autocomplete: 'off', placeholder: 'https://example.com/namaskah' }),
    hint: 'https, on a public address.',
  });
  const description = field({
    id: 'webhook-description',
    label: 'Description (optional)',
    control: h('input', { type: 'text', name: 'description', maxlength: '500', autocomplete: 'off' }),
  });
  const boxes = EVENT_TYPES.map(([type, label]) =>
    h('label', { class: 'checkbox' }, h('input', { type: 'checkbox', name: 'events', value: type, checked: type !== 'verification.waiting' }), ` ${label} `, h('code', null, type)),
  );
  const eventsError = h('p', { class: 'field-error', id: 'webhook-events-error', hidden: true });
  const events = h('fieldset', { class: 'field checkbox-group', 'aria-describedby': 'webhook-events-error' }, h('legend', null, 'Events'), ...boxes, eventsError);
  const createButton = h('button', { type: 'submit', class: 'button primary' }, 'Add endpoint');
  const form = h('form', { class: 'stacked-form', novalidate: true }, url.el, description.el, events, createButton);
  const reveal = h('div', { class: 'key-reveal-holder', 'aria-live': 'polite' });

  const list = h('div', { id: 'webhook-endpoints', class: 'endpoint-list' });
  const empty = emptyState('No webhook endpoints yet.');
  main.append(
    h('section', { class: 'card', 'aria-labelledby': 'new-webhook-title' }, h('h2', { id: 'new-webhook-title', class: 'card-title' }, 'New endpoint'), errors.el, form, reveal),
    h('section', { class: 'card list-card', 'aria-labelledby': 'webhooks-title' }, h('h2', { id: 'webhooks-title', class: 'card-title' }, 'Your endpoints'), list, empty),
  );

  function showSecret(title, secret) {
    const done = h('button', { type: 'button', class: 'button ghost small' }, 'I have saved it');
    done.addEventListener('click', () => reveal.replaceChildren());
    fill(
      reveal,
      h(
        'div',
        { class: 'key-reveal', role: 'region', 'aria-label': 'Your signing secret' },
        h('p', null, h('strong', null, title), ' Copy the signing secret now — it will not be shown again.'),
        h('div', { class: 'key-line' }, h('code', { class: 'key-secret', id: 'new-webhook-secret' }, secret), copyButton(() => secret, 'Copy signing secret', 'Signing secret')),
        done,
      ),
    );
    reveal.scrollIntoView({ block: 'nearest' });
  }

  async function act(button, work) {
    button.disabled = true;
    errors.clear();
    try {
      await work();
      await load();
    } catch (error) {
      errors.show(describeError(error));
      button.disabled = false;
    }
  }

  function attemptLine(a) {
    const outcome = a.response_status ? `HTTP ${a.response_status}` : a.error ?? 'no answer';
    return h(
      'li',
      { class: a.succeeded ? 'attempt ok' : 'attempt failed' },
      `${formatDateTime(a.attempted_at)} · ${a.succeeded ? 'delivered' : 'failed'} · ${outcome} · ${a.latency_ms} ms`,
      a.response_excerpt ? h('pre', { class: 'excerpt' }, a.response_excerpt) : null,
    );
  }

  async function showDeliveries(endpoint, holder) {
    const data = await api.get(`${base(endpoint.id)}/deliveries?limit=20`);
    if (!ctx.isCurrent()) return;
    const items = data.items ?? [];
    if (items.length === 0) {
      fill(holder, h('p', { class: 'hint' }, 'No events sent to this endpoint yet.'));
      return;
    }
    fill(
      holder,
      h(
        'ul',
        { class: 'delivery-list' },
        items.map((d) => {
          const resend = h('button', { type: 'button', class: 'button ghost small' }, 'Send again');
          resend.addEventListener('click', () =>
            act(resend, async () => {
              await api.post(`${base(endpoint.id)}/deliveries/${encodeURIComponent(d.event_id)}/resend`, {});
              toast(`Event ${d.event_type} will be sent again now.`);
            }),
          );
          return h(
            'li',
            { class: 'delivery', dataset: { event: d.event_id } },
            h('div', { class: 'delivery-head' }, h('code', null, d.event_type), ` · ${formatDateTime(d.event_created_at)} · `, h('strong', null, d.status), d.next_attempt_at ? ` · next try ${formatDateTime(d.next_attempt_at)}` : '', ' ', resend),
            h('ol', { class: 'attempts' }, d.attempts.map(attemptLine)),
          );
        }),
      ),
    );
  }

  function endpointCard(e) {
    const toggle = h('button', { type: 'button', class: 'button ghost small' }, e.enabled ? 'Disable' : 'Enable');
    toggle.addEventListener('click', () =>
      act(toggle, async () => {
        await request('PATCH', base(e.id), { body: { enabled: !e.enabled } });
        toast(e.enabled ? 'Endpoint disabled.' : 'Endpoint enabled; pending deliveries resume.');
      }),
    );
    const rotate = h('button', { type: 'button', class: 'button ghost small' }, 'Rotate secret');
    rotate.addEventListener('click', () =>
      act(rotate, async () => {
        const rotated = await api.post(`${base(e.id)}/rotate-secret`, {});
        showSecret(`New secret for ${rotated.url}.`, rotated.secret);
      }),
    );
    const remove = h('button', { type: 'button', class: 'button danger-ghost small' }, 'Delete');
    const actions = h('div', { class: 'actions-cell' }, toggle, rotate, remove);
    remove.addEventListener('click', () => {
      const confirm = h('button', { type: 'button', class: 'button danger small' }, 'Yes, delete');
      const keep = h('button', { type: 'button', class: 'button ghost small' }, 'Keep');
      keep.addEventListener('click', () => fill(actions, toggle, rotate, remove));
      confirm.addEventListener('click', () =>
        act(confirm, async () => {
          await api.delete(base(e.id));
          toast('Endpoint deleted.');
        }),
      );
      fill(actions, h('span', { class: 'confirm-text' }, 'Delete this endpoint and its delivery log?'), confirm, keep);
      confirm.focus();
    });
    const deliveries = h('div', { class: 'deliveries' });
    const details = h('details', null, h('summary', null, 'Recent deliveries'), deliveries);
    details.addEventListener('toggle', () => {
      if (details.open) showDeliveries(e, deliveries).catch((error) => errors.show(describeError(error)));
    });
    return h(
      'article',
      { class: 'endpoint', dataset: { id: e.id } },
      h('h3', { class: 'endpoint-url' }, h('code', null, e.url)),
      e.description ? h('p', null, e.description) : null,
      h(
        'p',
        null,
        e.enabled ? h('span', { class: 'badge badge-received' }, 'Enabled') : h('span', { class: 'badge badge-cancelled' }, 'Disabled'),
        e.disabled_reason ? ` ${e.disabled_reason}` : '',
        e.previous_secret_expires_at ? ` · previous secret signs until ${formatDateTime(e.previous_secret_expires_at)}` : '',
      ),
      h('p', { class: 'hint' }, 'Events: ', e.events.map((t) => h('code', null, `${t} `))),
      actions,
      details,
    );
  }

  async function load() {
    try {
      const data = await api.get('/v1/webhook-endpoints');
      if (!ctx.isCurrent()) return;
      const items = data.items ?? [];
      fill(list, items.map(endpointCard));
      empty.hidden = items.length > 0;
    } catch (error) {
      errors.show(describeError(error));
    }
  }

  let creating = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (creating) return;
    errors.clear();
    url.setError(null);
    eventsError.hidden = true;
    const chosen = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
    if (!url.control.value.trim()) {
      url.setError('Enter the URL we should send events to.');
      url.control.focus();
      return;
    }
    if (chosen.length === 0) {
      eventsError.textContent = 'Choose at least one event.';
      eventsError.hidden = false;
      return;
    }
    creating = true;
    createButton.disabled = true;
    try {
      const body = { url: url.control.value.trim(), events: chosen };
      if (description.control.value.trim()) body.description = description.control.value.trim();
      const created = await api.post('/v1/webhook-endpoints', body);
      showSecret(`Endpoint ${created.url} added.`, created.secret);
      url.control.value = '';
      description.control.value = '';
      await load();
    } catch (error) {
      const issue = error?.problem?.issues?.find((i) => i.path === '/url');
      if (issue) url.setError(`This URL cannot be used: ${issue.message}.`);
      else errors.show(describeError(error));
    } finally {
      creating = false;
      createButton.disabled = false;
    }
  });

  await load();
}
