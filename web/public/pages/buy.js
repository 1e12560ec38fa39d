// Buy a number: service + country with its price, a Buy button that is safe to press twice, and
// the customer's live numbers below it.
import { h, fill } from '../dom.js';
import { api, request, withQuery, newIdempotencyKey, sleep, ApiError } from '../api.js';
import { loadServices, serviceLabel } from '../services.js';
import { state, subscribe } from '../state.js';
import { refreshWalletSoon } from '../session.js';
import { on } from '../live.js';
import { describePurchaseError, describeError, outcomeUnknown } from '../errors.js';
import { countryName, formatMoney, formatPhone, TERMINAL_STATES } from '../format.js';
import { verificationCard } from '../components/verification-card.js';
import { pageHeader, errorBox, loading, emptyState, toast } from '../ui.js';

const RECENT_MS = 30 * 60 * 1000;

function percent(rate) {
  return `${Math.round(rate * 100)} %`;
}

/** " · 82 % success" in the picker, nothing while there is too little to tell. */
function successShort(offer) {
  const rate = offer.last_24h?.success_rate;
  return rate === null || rate === undefined ? '' : ` · ${percent(rate)} success`;
}

/** How the offer delivered over the last 24 hours, in words; too few finished is said as such, never 0 %. */
function deliveryText(stats) {
  if (!stats) return '';
  if (stats.success_rate === null) {
    return stats.sample_size
      ? `Last 24 hours: only ${stats.sample_size} finished — too few to show a success rate.`
      : 'Last 24 hours: no finished verifications yet — no success rate to show.';
  }
  const median = stats.median_seconds_to_code === null ? '' : `, median ${stats.median_seconds_to_code} s to the code`;
  return `Last 24 hours: ${percent(stats.success_rate)} of ${stats.sample_size} got a code${median}.`;
}

export async function render(main, ctx) {
  main.append(
    pageHeader(
      'Buy a number',
      'Pick a service and a country. The price is held on your wallet and charged only when the code arrives; if no code comes, the hold is released automatically.',
    ),
  );

  const countrySelect = h('select', { id: 'country', name: 'country' });
  const serviceSelect = h('select', { id: 'service', name: 'service' });
  const price = h('output', { class: 'price-value', id: 'price', for: 'service country', 'aria-live': 'off' }, '—');
  const stock = h('span', { class: 'stock' });
  const balanceHint = h('p', { class: 'hint', id: 'balance-hint' });
  const deliveryHint = h('p', { class: 'hint', id: 'delivery-hint' });
  const buyButton = h('button', { type: 'submit', class: 'button primary wide', id: 'buy-button' }, 'Buy number');
  // Number options: area codes, carriers, voice, and how many numbers at once.
  const areaCodesInput = h('input', { id: 'area-codes', name: 'area_codes', type: 'text', inputmode: 'numeric', autocomplete: 'off', placeholder: 'any, e.g. 212, 415', 'aria-describedby': 'options-hint' });
  const carriersInput = h('input', { id: 'carriers', name: 'carriers', type: 'text', autocomplete: 'off', placeholder: 'any, e.g. tmo, vz', 'aria-describedby': 'options-hint' });
  const voiceInput = h('input', { id: 'voice', name: 'voice', type: 'checkbox' });
  const quantityInput = h('input', { id: 'quantity', name: 'quantity', type: 'number', min: '1', max: '50', step: '1', value: '1' });
  const optionsHint = h('p', { class: 'hint', id: 'options-hint' });
  const options = h(
    'details',
    { class: 'number-options', id: 'number-options' },
    h('summary', null, 'Number options'),
    h(
      'div',
      { class: 'field-row' },
      h('div', { class: 'field' }, h('label', { for: 'area-codes' }, 'Area codes'), areaCodesInput),
      h('div', { class: 'field' }, h('label', { for: 'carriers' }, 'Carriers'), carriersInput),
    ),
    h(
      'div',
      { class: 'field-row' },
      h('div', { class: 'field checkbox-field' }, voiceInput, h('label', { for: 'voice' }, 'Code by voice call')),
      h('div', { class: 'field' }, h('label', { for: 'quantity' }, 'How many numbers'), quantityInput),
    ),
    optionsHint,
  );
  const status = h('p', { class: 'visually-hidden', role: 'status', id: 'buy-status' });
  const errors = errorBox('buy-error');
  const form = h(
    'form',
    { class: 'stack buy-form', novalidate: true, 'aria-labelledby': 'buy-form-title' },
    h('h2', { id: 'buy-form-title', class: 'card-title' }, 'New number'),
    h('div', { class: 'field-row' }, h('div', { class: 'field' }, h('label', { for: 'country' }, 'Country'), countrySelect), h('div', { class: 'field' }, h('label', { for: 'service' }, 'Service'), serviceSelect)),
    options,
    h('div', { class: 'price-line' }, h('span', { class: 'price-label' }, 'Price'), price, stock),
    deliveryHint,
    balanceHint,
    errors.el,
    buyButton,
    status,
  );
  const formCard = h('section', { class: 'card buy-card' }, loading('Loading services…'));

  const list = h('div', { class: 'vcard-list', id: 'active-verifications' });
  const empty = emptyState('Numbers you buy appear here. The code shows up by itself as soon as the SMS arrives — no need to reload.');
  const activeCount = h('span', { class: 'count' });
  const activeSection = h(
    'section',
    { class: 'active-section', 'aria-labelledby': 'active-title' },
    h('div', { class: 'section-head' }, h('h2', { id: 'active-title' }, 'Your numbers ', activeCount), h('a', { href: '#/history', class: 'subtle-link' }, 'All history')),
    empty,
    list,
  );
  main.append(h('div', { class: 'buy-layout' }, formCard, activeSection));

  // ------------------------------------------------------------------ the live list
  const cards = new Map();
  ctx.onCleanup(() => cards.forEach((card) => card.destroy()));
  function updateCount() {
    const active = [...cards.values()].filter((c) => !TERMINAL_STATES.has(c.verification?.state)).length;
    activeCount.textContent = active ? `(${active} active)` : '';
    empty.hidden = cards.size > 0;
  }
  function addCard(v, atTop) {
    if (cards.has(v.id)) {
      cards.get(v.id).update(v);
      return cards.get(v.id);
    }
    const card = verificationCard(v, { compact: true, headingLevel: 'h3', onUpdate: updateCount });
    cards.set(v.id, card);
    if (atTop) list.prepend(card.el);
    else list.append(card.el);
    updateCount();
    return card;
  }
  // A purchase made elsewhere (another tab, the API) shows up here too.
  ctx.onCleanup(
    on('verification', (v) => {
      if (!cards.has(v.id) && !TERMINAL_STATES.has(v.state)) addCard(v, true);
    }),
  );

  async function loadActive() {
    const [recent, waiting] = await Promise.all([
      // Service names come from the catalogue; wait for it so cards show "WhatsApp", not a key.
      api.get(withQuery('/v1/verifications', { limit: 20 })).catch(() => ({ items: [] })),
      api.get(withQuery('/v1/verifications', { state: 'waiting', limit: 50 })).catch(() => ({ items: [] })),
      loadServices().catch(() => null),
    ]);
    if (!ctx.isCurrent()) return;
    const byId = new Map();
    for (const v of [...(waiting.items ?? []), ...(recent.items ?? [])]) byId.set(v.id, v);
    const shown = [...byId.values()]
      // Live ones, and recent outcomes worth seeing again (a failed purchase cost nothing: not shown).
      .filter((v) => !TERMINAL_STATES.has(v.state) || (v.state !== 'failed' && Date.now() - Date.parse(v.created_at) < RECENT_MS))
      .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    for (const v of shown) addCard(v, false);
    updateCount();
  }
  loadActive();

  // ------------------------------------------------------------------ the catalogue
  // One Idempotency-Key per purchase intent. A retry after a lost answer (or a second click that
  // slips through) reuses it, so the server buys at most once. A definite answer ends the intent.
  let intent = null;
  let inFlight = false;
  let services;
  try {
    services = await loadServices();
  } catch (error) {
    if (!ctx.isCurrent()) return;
    const retry = h('button', { type: 'button', class: 'button ghost' }, 'Try again');
    retry.addEventListener('click', () => ctx.navigate('#/buy'));
    const box = errorBox();
    box.show(`The list of services could not be loaded. ${describeError(error)}`, retry);
    fill(formCard, box.el);
    return;
  }
  if (!ctx.isCurrent()) return;
  if (!services.length) {
    fill(formCard, h('h2', { class: 'card-title' }, 'New number'), emptyState('No services are offered right now. Please check back later.'));
    return;
  }

  const countries = [...new Set(services.map((s) => s.country))].sort((a, b) => countryName(a).localeCompare(countryName(b)));
  for (const code of countries) countrySelect.append(h('option', { value: code }, `${countryName(code)} (${code})`));
  countrySelect.value = countries.includes('US') ? 'US' : countries[0];

  /** What the options add to the selected offer (GET /v1/area-codes), loaded per service and country. */
  let offerOptions = null;
  let optionsRequest = 0;
  async function loadOfferOptions() {
    const s = selected();
    const asked = ++optionsRequest;
    offerOptions = null;
    if (!s) return;
    try {
      const answer = await api.get(withQuery('/v1/area-codes', { service: s.service, country: s.country }));
      if (asked !== optionsRequest || !ctx.isCurrent()) return;
      offerOptions = answer;
    } catch {
      offerOptions = null;
    }
    showOptions();
    showPrice();
  }

  const listOf = (text, transform = (x) => x) =>
    [...new Set(String(text).split(/[\s,]+/).map((x) => transform(x.trim())).filter((x) => x !== ''))];

  /** The options as the form says them, in the API's words. */
  function chosenOptions() {
    const body = {};
    const areaCodes = listOf(areaCodesInput.value);
    const carriers = listOf(carriersInput.value, (x) => x.toLowerCase());
    if (areaCodes.length) body.area_codes = areaCodes;
    if (carriers.length) body.carriers = carriers;
    if (voiceInput.checked) body.capability = 'voice';
    return body;
  }
  function quantity() {
    const n = Number(quantityInput.value);
    return Number.isInteger(n) && n >= 1 && n <= 50 ? n : null;
  }

  function showOptions() {
    const o = offerOptions;
    areaCodesInput.disabled = !o?.can_choose_area_code;
    carriersInput.disabled = !o?.can_choose_carrier;
    voiceInput.disabled = !o?.voice;
    if (voiceInput.disabled) voiceInput.checked = false;
    if (areaCodesInput.disabled) areaCodesInput.value = '';
    if (carriersInput.disabled) carriersInput.value = '';
    const parts = [];
    if (o?.can_choose_area_code) {
      const sample = o.area_codes.slice(0, 6).map((a) => a.area_code).join(', ');
      parts.push(`Area code + ${formatMoney(o.surcharge_minor.area_code ?? 0, o.currency)}${sample ? ` (e.g. ${sample})` : ''}`);
    }
    if (o?.can_choose_carrier) parts.push(`carrier + ${formatMoney(o.surcharge_minor.carrier ?? 0, o.currency)}${o.carriers?.length ? ` (${o.carriers.join(', ')})` : ''}`);
    if (o?.voice) parts.push(`voice + ${formatMoney(o.surcharge_minor.voice ?? 0, o.currency)}`);
    optionsHint.textContent = parts.length
      ? `${parts.join('; ')}. A number outside the area codes or carriers you chose is not sold to you.`
      : 'No area code, carrier or voice choice for this service and country.';
  }

  /** The price of one number with the options chosen, in minor units. */
  function unitPrice(s) {
    const o = offerOptions;
    const chosen = chosenOptions();
    let amount = s.price_minor;
    if (o && chosen.area_codes) amount += o.surcharge_minor.area_code ?? 0;
    if (o && chosen.carriers) amount += o.surcharge_minor.carrier ?? 0;
    if (o && chosen.capability === 'voice') amount += o.surcharge_minor.voice ?? 0;
    return amount;
  }

  function selected() {
    return services.find((s) => s.service === serviceSelect.value && s.country === countrySelect.value) ?? null;
  }

  function fillServices() {
    const previous = serviceSelect.value;
    const offered = services.filter((s) => s.country === countrySelect.value).sort((a, b) => (a.name || a.service).localeCompare(b.name || b.service));
    fill(
      serviceSelect,
      offered.map((s) =>
        h(
          'option',
          { value: s.service },
          `${s.name || serviceLabel(s.service)} — ${formatMoney(s.price_minor, s.currency)}${successShort(s)}${s.available === false ? ' (none available)' : ''}`,
        ),
      ),
    );
    if (offered.some((s) => s.service === previous)) serviceSelect.value = previous;
    showPrice();
  }

  function showPrice() {
    const s = selected();
    if (!s) {
      price.textContent = '—';
      stock.textContent = '';
      deliveryHint.textContent = '';
      if (!inFlight) buyButton.textContent = 'Buy number';
      return;
    }
    const count = quantity() ?? 1;
    const total = unitPrice(s) * count;
    const amount = formatMoney(total, s.currency);
    price.textContent = count > 1 ? `${amount} (${count} × ${formatMoney(unitPrice(s), s.currency)})` : amount;
    deliveryHint.textContent = deliveryText(s.last_24h);
    stock.textContent = s.available === false ? 'None available right now' : 'Available';
    stock.dataset.available = String(s.available !== false);
    if (!inFlight) buyButton.textContent = count > 1 ? `Buy ${count} numbers · ${amount}` : `Buy number · ${amount}`;
    const wallet = state.wallet;
    if (wallet) {
      const short = wallet.available_minor < total;
      balanceHint.textContent = short
        ? `Your available balance is ${formatMoney(wallet.available_minor, wallet.currency)} — not enough for ${count > 1 ? 'these numbers' : 'this number'}.`
        : `Your available balance is ${formatMoney(wallet.available_minor, wallet.currency)}.`;
      balanceHint.dataset.short = String(short);
    }
  }

  countrySelect.addEventListener('change', () => {
    fillServices();
    loadOfferOptions();
    errors.clear();
  });
  serviceSelect.addEventListener('change', () => {
    showPrice();
    loadOfferOptions();
    errors.clear();
  });
  for (const input of [areaCodesInput, carriersInput, voiceInput, quantityInput]) {
    input.addEventListener('input', () => {
      showPrice();
      errors.clear();
    });
    input.addEventListener('change', showPrice);
  }
  ctx.onCleanup(subscribe(showPrice));
  fillServices();
  showOptions();
  loadOfferOptions();
  fill(formCard, presetsSection(), form);

  // ------------------------------------------------------------------ presets and favourites
  // Kept on the server, so they follow the customer to every browser. Area code and carrier are
  // kept as given, for the purchase options that use them.
  function presetsSection() {
    const list = h('ul', { class: 'preset-list', id: 'presets', 'aria-label': 'Your presets' });
    const name = h('input', { type: 'text', id: 'preset-name', maxlength: '64', placeholder: 'e.g. WhatsApp US' });
    const save = h('button', { type: 'button', class: 'button ghost small', id: 'save-preset' }, 'Save as preset');
    const presetErrors = errorBox('preset-error');
    const section = h(
      'div',
      { class: 'presets stack' },
      h('h3', { class: 'card-subtitle' }, 'Presets'),
      list,
      h('div', { class: 'field-row' }, h('label', { for: 'preset-name' }, 'Preset name'), name, save),
      presetErrors.el,
    );
    async function load() {
      let presets = [];
      try {
        presets = (await api.get('/v1/presets')).items ?? [];
      } catch (error) {
        presetErrors.show(describeError(error));
      }
      if (!ctx.isCurrent()) return;
      fill(
        list,
        presets.map((p) => {
          const use = h('button', { type: 'button', class: 'button ghost small preset-use', dataset: { id: p.id } }, `${p.favourite ? '★ ' : ''}${p.name}`);
          use.addEventListener('click', () => {
            countrySelect.value = p.country;
            fillServices();
            serviceSelect.value = p.service;
            areaCodesInput.value = p.area_code ?? '';
            carriersInput.value = p.carrier ?? '';
            showOptions();
            showPrice();
          });
          const star = h('button', { type: 'button', class: 'button ghost small preset-favourite', 'aria-label': `${p.favourite ? 'Unmark' : 'Mark'} ${p.name} as favourite`, 'aria-pressed': String(p.favourite) }, p.favourite ? '★' : '☆');
          star.addEventListener('click', async () => {
            await request('PATCH', `/v1/presets/${encodeURIComponent(p.id)}`, { body: { favourite: !p.favourite } }).catch((error) => presetErrors.show(describeError(error)));
            load();
          });
          const remove = h('button', { type: 'button', class: 'button ghost small preset-delete', 'aria-label': `Delete preset ${p.name}` }, '×');
          remove.addEventListener('click', async () => {
            await api.delete(`/v1/presets/${encodeURIComponent(p.id)}`).catch((error) => presetErrors.show(describeError(error)));
            load();
          });
          return h('li', { class: 'preset', dataset: { name: p.name } }, use, star, remove);
        }),
      );
    }
    save.addEventListener('click', async () => {
      presetErrors.clear();
      const label = name.value.trim() || `${serviceLabel(serviceSelect.value)} ${countrySelect.value}`;
      try {
        await api.post('/v1/presets', {
          name: label,
          service: serviceSelect.value,
          country: countrySelect.value,
          // A preset keeps one area code and one carrier: the first of each asked for.
          area_code: listOf(areaCodesInput.value)[0] ?? null,
          carrier: listOf(carriersInput.value, (x) => x.toLowerCase())[0] ?? null,
        });
        name.value = '';
        toast(`Saved preset ${label}.`, 'success');
        load();
      } catch (error) {
        presetErrors.show(describeError(error));
      }
    });
    load();
    return section;
  }

  // ------------------------------------------------------------------ buying

  // The intent is the whole request: another option or quantity is another purchase (another key).
  function purchaseIntent() {
    const body = { service: serviceSelect.value, country: countrySelect.value, ...chosenOptions() };
    const count = quantity() ?? 1;
    const signature = JSON.stringify([body, count]);
    if (!intent || intent.signature !== signature) intent = { key: newIdempotencyKey(), body, count, signature };
    return intent;
  }

  function setBusy(busy) {
    buyButton.disabled = busy;
    if (busy) {
      buyButton.setAttribute('aria-busy', 'true');
      buyButton.textContent = 'Buying…';
    } else {
      buyButton.removeAttribute('aria-busy');
      showPrice();
    }
  }

  /** A bulk purchase: every number bought is listed; those that were not are counted, not charged. */
  function showBulkOutcome(items) {
    const bought = items.filter((i) => !i.error);
    for (const i of [...bought].reverse()) addCard(i.verification, true).el.classList.add('vcard-new');
    refreshWalletSoon(0);
    const failed = items.length - bought.length;
    status.textContent = `Bought ${bought.length} of ${items.length} numbers.`;
    if (failed > 0) {
      const reasons = [...new Set(items.filter((i) => i.error).map((i) => i.error.detail))];
      errors.show(`${failed} of ${items.length} numbers could not be bought; you were not charged for them. ${reasons.join(' ')}`);
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (inFlight) return;
    if (quantity() === null) {
      errors.show('How many numbers: a whole number from 1 to 50.');
      quantityInput.focus();
      return;
    }
    inFlight = true;
    setBusy(true);
    errors.clear();
    status.textContent = 'Buying your number…';
    const current = purchaseIntent();
    try {
      let result;
      for (let attempt = 0; ; attempt += 1) {
        try {
          result = await request('POST', current.count > 1 ? '/v1/verifications/bulk' : '/v1/verifications', {
            body: current.count > 1 ? { ...current.body, quantity: current.count } : current.body,
            idempotencyKey: current.key,
          });
          break;
        } catch (error) {
          // The first request with this key is still running on the server: wait and ask again.
          if (error instanceof ApiError && error.code === 'idempotency_in_progress' && attempt < 10) {
            await sleep(Math.min(Math.max(error.retryAfterSeconds ?? 1, 0.5), 5) * 1000);
            continue;
          }
          throw error;
        }
      }
      intent = null;
      if (!ctx.isCurrent()) return;
      if (current.count > 1) {
        showBulkOutcome(result.data.items);
        return;
      }
      const v = result.data;
      const card = addCard(v, true);
      card.el.classList.add('vcard-new');
      refreshWalletSoon(0);
      status.textContent = v.phone_number
        ? `Number bought: ${formatPhone(v.phone_number)}. Waiting for the code.`
        : 'Purchase accepted. Getting your number…';
    } catch (error) {
      if (!outcomeUnknown(error)) intent = null;
      if (!ctx.isCurrent()) return;
      const extra = [];
      if (error instanceof ApiError && error.code === 'insufficient_funds') {
        extra.push(h('p', null, h('a', { href: '#/wallet' }, 'See your wallet')));
      }
      if (error instanceof ApiError && error.verificationId) {
        extra.push(h('p', null, h('a', { href: `#/verifications/${encodeURIComponent(error.verificationId)}` }, 'See what happened')));
      }
      errors.show(describePurchaseError(error), extra);
      status.textContent = '';
      refreshWalletSoon(0);
    } finally {
      inFlight = false;
      if (ctx.isCurrent()) setBusy(false);
    }
  });
}
