/**
 * The SMS-Activate `handler_api.php` protocol, spoken by many sellers (SMS-Activate itself until
 * its shutdown, DaisySMS, HeroSMS, Grizzly, SMS-Man, …). One URL, `api_key` + `action` parameters.
 *
 * The protocol has no idempotency key and no client reference, so an unclear purchase can only be
 * matched afterwards by what it looks like in the active-activations list (see `lookup`). Prices
 * are read as major units of the installation currency: configure a seller account in that currency.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../clock.ts';
import { decimalToMinor, malformed, minorToDecimalString, sendUpstream, validateShape } from '../http.ts';
import { createPacer, type Pacer } from '../pacing.ts';
import {
  ProviderError,
  type ActiveOrder,
  type CancelOutcome,
  type CatalogueEntry,
  type LookupRequest,
  type LookupResult,
  type OrderCheck,
  type OrderRef,
  type Provider,
  type ProviderMessage,
  type ProviderOrder,
  type PurchaseRequest,
} from '../provider.ts';
import {
  activeActivationsSchema,
  errorFor,
  GONE_TOKENS,
  normaliseId,
  normalisePhone,
  numberV2Schema,
  parseSellerTime,
  priceEntrySchema,
  pricesSchema,
  readAnswer,
  restOf,
  tokenOf,
  type ActiveActivationWire,
  type Answer,
} from './protocol.ts';

export interface SmsActivateOptions {
  /** Full URL of the seller's handler, e.g. "https://api.sms-activate.ae/stubs/handler_api.php". */
  baseUrl: string;
  apiKey: string;
  /** Calls started per second (default 10); 0 or Infinity disables pacing. */
  requestsPerSecond?: number;
  /** Per-request timeout, including reading the body (default 20 000 ms). */
  timeoutMs?: number;
  clock: Clock;
  /** Our ISO country → the seller's numeric country id. */
  countryCodes?: Record<string, string>;
  /** Our service name → the seller's service code. */
  serviceCodes?: Record<string, string>;
  /** Currency of prices and balance: the installation currency (default "USD"). */
  currency?: string;
  /** Wait suggested after EARLY_CANCEL_DENIED (default 120 s; sellers document 1 to 3 minutes). */
  earlyCancelRetryAfterSeconds?: number;
  /** Lookup: activations created this long before our request still count (clock skew; default 60 s). */
  lookupSkewSeconds?: number;
  /** Lookup: until this long after the request, "not in the list yet" is unknown, not absent (default 120 s). */
  lookupSettleSeconds?: number;
  /**
   * Activation lifetime assumed when the seller states no end time (default 1200 s, the 20 minutes
   * sellers consistently use); null leaves endsAt null.
   */
  activationLifetimeSeconds?: number | null;
  /** UTC offset of the seller's zone-less timestamps (default 180: SMS-Activate wrote Moscow time). */
  sellerUtcOffsetMinutes?: number;
  /** How long catalogue() answers from cache (default 600 s). */
  catalogueTtlSeconds?: number;
}

export const DEFAULT_COUNTRY_CODES: Readonly<Record<string, string>> = {
  US: '187',
  GB: '16',
  CA: '36',
  DE: '43',
  FR: '78',
  NL: '48',
  PL: '15',
  IN: '22',
  ID: '6',
  BR: '73',
};

export const DEFAULT_SERVICE_CODES: Readonly<Record<string, string>> = {
  whatsapp: 'wa',
  telegram: 'tg',
  google: 'go',
  facebook: 'fb',
  instagram: 'ig',
  twitter: 'tw',
  discord: 'ds',
  microsoft: 'mm',
  tiktok: 'lf',
  viber: 'vi',
  amazon: 'am',
  uber: 'ub',
};

interface Activation {
  id: string;
  serviceCode: string;
  phoneNumber: string;
  costMinor: number | null;
  countryCode: string | null;
  createdAt: Date | null;
  codes: string[];
  texts: string[];
}

/** A code the seller reported, possibly with the full text; the basis of a stable message id. */
interface ReportedSms {
  code: string | null;
  text: string;
}

export class SmsActivateProvider implements Provider {
  readonly name = 'sms-activate' as const;

  private readonly options: SmsActivateOptions;
  private readonly clock: Clock;
  private readonly pacer: Pacer;
  private readonly countryCodes: Record<string, string>;
  private readonly serviceCodes: Record<string, string>;
  private readonly lifetimeMs: number | null;
  private readonly utcOffset: number;
  // Learned from the seller: a BAD_ACTION answer means the action does not exist there.
  private numberV2: 'unknown' | 'supported' | 'unsupported' = 'unknown';
  private fullSms: 'unknown' | 'supported' | 'unsupported' = 'unknown';
  private catalogueCache: { entries: CatalogueEntry[]; until: number } | null = null;

  constructor(options: SmsActivateOptions) {
    this.options = options;
    this.clock = options.clock;
    this.pacer = createPacer({ requestsPerSecond: options.requestsPerSecond ?? 10 });
    this.countryCodes = options.countryCodes ?? { ...DEFAULT_COUNTRY_CODES };
    this.serviceCodes = options.serviceCodes ?? { ...DEFAULT_SERVICE_CODES };
    const lifetime = options.activationLifetimeSeconds === undefined ? 1200 : options.activationLifetimeSeconds;
    this.lifetimeMs = lifetime === null ? null : lifetime * 1000;
    this.utcOffset = options.sellerUtcOffsetMinutes ?? 180;
    new URL(options.baseUrl); // fail at start-up on a malformed URL, not at the first purchase
  }

  // ---- Provider ---------------------------------------------------------------------------------

  async catalogue(): Promise<CatalogueEntry[]> {
    const now = this.clock.now().getTime();
    if (this.catalogueCache && now < this.catalogueCache.until) return this.catalogueCache.entries;
    const entries: CatalogueEntry[] = [];
    for (const [country, countryId] of Object.entries(this.countryCodes)) {
      const label = `sms-activate getPrices ${countryId}`;
      const answer = await this.call('getPrices', { country: countryId }, false, label);
      const token = tokenOf(answer);
      if (token !== null) {
        const error = errorFor(token, answer, label, false);
        // A country this seller does not serve is left out; anything else fails the catalogue.
        if (error.code === 'rejected' || error.code === 'no_numbers') continue;
        throw error;
      }
      if (answer.kind !== 'json') throw malformed(label, 'expected JSON prices');
      const prices = validateShape(pricesSchema, answer.value, label);
      const byService = prices[countryId] ?? {};
      for (const [service, code] of Object.entries(this.serviceCodes)) {
        if (byService[code] === undefined) continue;
        const entry = validateShape(priceEntrySchema, byService[code], `${label} ${code}`);
        const costMinor = decimalToMinor(entry.cost, 'up');
        if (costMinor === null) throw malformed(label, `unusable price ${String(entry.cost)} for ${code}`);
        const count = entry.count === null || entry.count === undefined ? null : Number(entry.count);
        entries.push({ service, country, costMinor, available: count !== null && Number.isSafeInteger(count) && count >= 0 ? count : null });
      }
    }
    this.catalogueCache = { entries, until: now + (this.options.catalogueTtlSeconds ?? 600) * 1000 };
    return entries;
  }

  async buy(request: PurchaseRequest): Promise<ProviderOrder> {
    const service = this.serviceCode(request.service);
    const country = this.countryId(request.country);
    if (!Number.isSafeInteger(request.maxCostMinor) || request.maxCostMinor <= 0) {
      throw new ProviderError('definite', 'rejected', `sms-activate: invalid price cap ${request.maxCostMinor}`);
    }
    // The cap always goes upstream: the seller refuses (WRONG_MAX_PRICE) rather than charging more.
    const params = { service, country, maxPrice: minorToDecimalString(request.maxCostMinor) };
    const startedAt = this.clock.now();

    if (this.numberV2 !== 'unsupported') {
      const label = 'sms-activate getNumberV2';
      const answer = await this.call('getNumberV2', params, true, label);
      const token = tokenOf(answer);
      if (token === 'BAD_ACTION' || token === 'WRONG_ACTION') {
        this.numberV2 = 'unsupported'; // nothing was bought: fall back to the classic action
      } else {
        this.numberV2 = 'supported';
        return this.orderFrom(answer, token, startedAt, label);
      }
    }
    const label = 'sms-activate getNumber';
    const answer = await this.call('getNumber', params, true, label);
    return this.orderFrom(answer, tokenOf(answer), startedAt, label);
  }

  /**
   * No client reference exists, so: the seller's active activations of the same service and
   * country, created no earlier than our request (minus skew), that no other verification claims.
   * Exactly one → found; several → unknown; none → unknown while the upstream may still be
   * finishing our request (settle window), then absent.
   */
  async lookup(request: LookupRequest): Promise<LookupResult> {
    const service = this.serviceCodes[request.service];
    const country = this.countryCodes[request.country];
    if (service === undefined || country === undefined) return { status: 'absent' }; // buy() could not have sent it
    const activations = await this.activeActivations('sms-activate getActiveActivations (lookup)');
    const from = request.requestedAt.getTime() - (this.options.lookupSkewSeconds ?? 60) * 1000;

    let undated = 0;
    const candidates = activations.filter((a) => {
      if (a.serviceCode !== service || request.claimedOrderIds.has(a.id)) return false;
      if (a.countryCode !== null && a.countryCode !== country) return false;
      if (a.costMinor !== null && a.costMinor > request.maxCostMinor) return false; // the cap was sent upstream
      if (a.createdAt === null) {
        undated += 1;
        return false;
      }
      return a.createdAt.getTime() >= from;
    });

    const a = candidates[0];
    if (candidates.length === 1 && undated === 0 && a) {
      return {
        status: 'found',
        order: { providerOrderId: a.id, phoneNumber: a.phoneNumber, endsAt: this.assumedEnd(a.createdAt ?? request.requestedAt), costMinor: a.costMinor },
      };
    }
    if (candidates.length > 0 || undated > 0) return { status: 'unknown' };
    const elapsed = this.clock.now().getTime() - request.requestedAt.getTime();
    return elapsed < (this.options.lookupSettleSeconds ?? 120) * 1000 ? { status: 'unknown' } : { status: 'absent' };
  }

  async check(order: OrderRef): Promise<OrderCheck> {
    const label = 'sms-activate getStatus';
    const answer = await this.call('getStatus', { id: order.providerOrderId }, false, label);
    const token = tokenOf(answer);
    switch (token) {
      case 'STATUS_WAIT_CODE':
      case 'STATUS_WAIT_RESEND':
        return { state: 'waiting', messages: [] };
      case 'STATUS_CANCEL':
        // The protocol says the same for a cancel and a timeout; past the lifetime it is the timeout.
        return { state: this.pastLifetime(order) ? 'expired' : 'cancelled', messages: [] };
      case 'STATUS_WAIT_RETRY':
        // Waiting for a further SMS; the value is the code already received.
        return { state: 'received', messages: this.messages(order, [smsFromValue(restOf(answer))]) };
      case 'STATUS_OK': {
        const reported = smsFromValue(restOf(answer));
        const fullText = await this.fullText(order.providerOrderId);
        return { state: 'received', messages: this.messages(order, [{ code: reported.code, text: fullText ?? reported.text }]) };
      }
      default:
        if (token !== null && GONE_TOKENS.has(token)) {
          // The seller forgot it: after its lifetime that is an expiry, before it we cannot tell.
          return { state: this.pastLifetime(order) ? 'expired' : 'unknown', messages: [] };
        }
        throw token === null ? malformed(label, `unexpected ${answer.kind} answer`, answer.status) : errorFor(token, answer, label, false);
    }
  }

  /** One getActiveActivations call for many orders; orders missing from the list are left out. */
  async checkMany(orders: OrderRef[]): Promise<Map<string, OrderCheck>> {
    const result = new Map<string, OrderCheck>();
    if (orders.length === 0) return result;
    const byId = new Map((await this.activeActivations('sms-activate getActiveActivations')).map((a) => [a.id, a]));
    for (const order of orders) {
      const activation = byId.get(order.providerOrderId);
      if (!activation) continue;
      const reported: ReportedSms[] = activation.codes.map((code, i) => ({ code, text: activation.texts[i] ?? code }));
      // Text without a code: some sellers only fill smsText.
      for (let i = activation.codes.length; i < activation.texts.length; i += 1) reported.push({ code: null, text: activation.texts[i]! });
      const messages = this.messages(order, reported);
      result.set(order.providerOrderId, { state: messages.length > 0 ? 'received' : 'waiting', messages });
    }
    return result;
  }

  async cancel(providerOrderId: string): Promise<CancelOutcome> {
    // Ask first: cancelling a delivered activation must never be reported as a refund.
    const statusLabel = 'sms-activate getStatus (before cancel)';
    const status = await this.call('getStatus', { id: providerOrderId }, false, statusLabel);
    const statusToken = tokenOf(status);
    if (statusToken === 'STATUS_OK' || statusToken === 'STATUS_WAIT_RETRY') return { outcome: 'already_received' };
    if (statusToken === 'STATUS_CANCEL' || (statusToken !== null && GONE_TOKENS.has(statusToken))) return { outcome: 'gone' };
    if (statusToken !== 'STATUS_WAIT_CODE' && statusToken !== 'STATUS_WAIT_RESEND') {
      throw statusToken === null ? malformed(statusLabel, `unexpected ${status.kind} answer`, status.status) : errorFor(statusToken, status, statusLabel, false);
    }

    const label = 'sms-activate setStatus 8 (cancel)';
    const answer = await this.call('setStatus', { id: providerOrderId, status: '8' }, true, label);
    if (answer.kind === 'empty' && answer.status >= 200 && answer.status < 300) return { outcome: 'cancelled' }; // HeroSMS 204
    const token = tokenOf(answer);
    switch (token) {
      case 'ACCESS_CANCEL':
      case 'ALREADY_CANCEL':
        return { outcome: 'cancelled' };
      case 'ACCESS_READY':
      case 'ACCESS_ACTIVATION':
      case 'OTP_RECEIVED':
      case 'NEW_OTP_RECEIVED':
      case 'ALREADY_FINISH':
        return { outcome: 'already_received' };
      case 'EARLY_CANCEL_DENIED':
        return { outcome: 'too_early', retryAfterSeconds: this.options.earlyCancelRetryAfterSeconds ?? 120 };
      case 'FREE_CANCELLATION_EXPIRED':
      case 'CANT_CANCEL':
        // The seller will not cancel any more; the activation runs out on its own.
        return { outcome: 'gone' };
      default:
        if (token !== null && GONE_TOKENS.has(token)) return { outcome: 'gone' };
        throw token === null ? malformed(label, `unexpected ${answer.kind} answer`, answer.status) : errorFor(token, answer, label, true);
    }
  }

  async complete(providerOrderId: string): Promise<void> {
    const label = 'sms-activate setStatus 6 (complete)';
    const answer = await this.call('setStatus', { id: providerOrderId, status: '6' }, true, label);
    if (answer.kind === 'empty' && answer.status >= 200 && answer.status < 300) return;
    const token = tokenOf(answer);
    if (token === 'ACCESS_ACTIVATION' || token === 'ALREADY_FINISH' || (token !== null && GONE_TOKENS.has(token))) return;
    throw token === null ? malformed(label, `unexpected ${answer.kind} answer`, answer.status) : errorFor(token, answer, label, true);
  }

  async activeOrders(): Promise<ActiveOrder[]> {
    const activations = await this.activeActivations('sms-activate getActiveActivations');
    return activations.map((a) => ({
      providerOrderId: a.id,
      phoneNumber: a.phoneNumber,
      service: this.ourService(a.serviceCode),
      createdAt: a.createdAt,
    }));
  }

  async balance(): Promise<{ amountMinor: number; currency: string }> {
    const label = 'sms-activate getBalance';
    const answer = await this.call('getBalance', {}, false, label);
    const token = tokenOf(answer);
    if (token !== 'ACCESS_BALANCE') {
      throw token === null ? malformed(label, `unexpected ${answer.kind} answer`, answer.status) : errorFor(token, answer, label, false);
    }
    const amountMinor = decimalToMinor(restOf(answer), 'down');
    if (amountMinor === null) throw malformed(label, 'unusable balance');
    return { amountMinor, currency: this.options.currency ?? 'USD' };
  }

  // ---- Internals --------------------------------------------------------------------------------

  private orderFrom(answer: Answer, token: string | null, startedAt: Date, label: string): ProviderOrder {
    // DaisySMS states the effective price in a header.
    const headerCost = answer.headers.get('x-price');
    if (token === 'ACCESS_NUMBER') {
      if (answer.kind !== 'text' || answer.fields.length !== 2) throw malformed(label, 'ACCESS_NUMBER without id and number');
      const id = normaliseId(answer.fields[0]!);
      const phone = normalisePhone(answer.fields[1]!);
      if (id === null || phone === null) throw malformed(label, 'ACCESS_NUMBER with an unusable id or number');
      return { providerOrderId: id, phoneNumber: phone, endsAt: this.assumedEnd(startedAt), costMinor: costOrNull(headerCost, label) };
    }
    if (token !== null) throw errorFor(token, answer, label, true);
    if (answer.kind !== 'json') throw malformed(label, `unexpected ${answer.kind} answer`, answer.status);
    const order = validateShape(numberV2Schema, answer.value, label, answer.status);
    const createdAt = parseSellerTime(order.activationTime, this.utcOffset);
    const statedEnd = parseSellerTime(order.activationEndTime, this.utcOffset);
    const cost = order.activationCost === null || order.activationCost === undefined ? headerCost : order.activationCost;
    return {
      providerOrderId: order.activationId,
      phoneNumber: order.phoneNumber,
      endsAt: statedEnd ?? this.assumedEnd(createdAt ?? startedAt),
      costMinor: costOrNull(cost, label),
    };
  }

  private pastLifetime(order: OrderRef): boolean {
    return this.lifetimeMs !== null && this.clock.now().getTime() >= order.since.getTime() + this.lifetimeMs;
  }

  private assumedEnd(from: Date): Date | null {
    return this.lifetimeMs === null ? null : new Date(from.getTime() + this.lifetimeMs);
  }

  private async activeActivations(label: string): Promise<Activation[]> {
    const answer = await this.call('getActiveActivations', {}, false, label);
    const token = tokenOf(answer);
    if (token === 'NO_ACTIVATIONS') return [];
    if (token !== null) throw errorFor(token, answer, label, false);
    if (answer.kind !== 'json') throw malformed(label, `unexpected ${answer.kind} answer`, answer.status);
    const body = validateShape(activeActivationsSchema, answer.value, label, answer.status);
    const list: ActiveActivationWire[] = Array.isArray(body.activeActivations) ? body.activeActivations : Object.values(body.activeActivations);
    return list.map((a) => ({
      id: a.activationId,
      serviceCode: a.serviceCode,
      phoneNumber: a.phoneNumber,
      costMinor: costOrNull(a.activationCost, label),
      countryCode: a.countryCode === null || a.countryCode === undefined ? null : String(a.countryCode),
      createdAt: parseSellerTime(a.activationTime, this.utcOffset),
      codes: a.smsCode,
      texts: a.smsText,
    }));
  }

  /** The full SMS text where the seller offers getFullSms; null when it does not or cannot say now. */
  private async fullText(id: string): Promise<string | null> {
    if (this.fullSms === 'unsupported') return null;
    try {
      const answer = await this.call('getFullSms', { id }, false, 'sms-activate getFullSms');
      const token = tokenOf(answer);
      if (token === 'BAD_ACTION' || token === 'WRONG_ACTION') {
        this.fullSms = 'unsupported';
        return null;
      }
      if (token !== 'FULL_SMS') return null;
      this.fullSms = 'supported';
      const text = restOf(answer).trim();
      return text === '' ? null : text;
    } catch (error) {
      // The code from getStatus is enough; the text is a courtesy and must not fail the poll.
      if (error instanceof ProviderError) return null;
      throw error;
    }
  }

  /**
   * Messages for an order. The protocol reports SMS per activation (never per number), so a
   * recycled number cannot leak a previous holder's SMS here; without an upstream timestamp the
   * message is dated now, never earlier than the order's `since`.
   */
  private messages(order: OrderRef, reported: ReportedSms[]): ProviderMessage[] {
    const now = this.clock.now();
    const receivedAt = now.getTime() < order.since.getTime() ? order.since : now;
    const seen = new Set<string>();
    const out: ProviderMessage[] = [];
    for (const sms of reported) {
      const providerMessageId = messageId(order.providerOrderId, sms);
      if (seen.has(providerMessageId)) continue;
      seen.add(providerMessageId);
      out.push({ providerMessageId, text: sms.text, code: sms.code, receivedAt });
    }
    return out;
  }

  private async call(action: string, params: Record<string, string>, mutating: boolean, label: string): Promise<Answer> {
    const url = new URL(this.options.baseUrl);
    url.searchParams.set('api_key', this.options.apiKey);
    url.searchParams.set('action', action);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    const res = await this.pacer.schedule(() =>
      sendUpstream({ method: 'GET', url, timeoutMs: this.options.timeoutMs ?? 20_000, mutating, label, now: () => this.clock.now() }),
    );
    const refused = res.status >= 400 && res.status < 500;
    let answer: Answer | null;
    try {
      answer = readAnswer(res, label);
    } catch (error) {
      // A 4xx page that is not a protocol answer (a proxy's HTML) is still a refusal: read the status below.
      if (!refused) throw error;
      answer = null;
    }
    if (answer && res.status >= 200 && res.status < 300) return answer;
    // 4xx carrying a protocol token (HeroSMS style) is read like any other answer.
    if (answer && refused && tokenOf(answer) !== null) return answer;
    if (res.status === 401 || res.status === 403) {
      throw new ProviderError('definite', 'bad_credentials', `${label}: refused (${res.status})`, { status: res.status });
    }
    if (res.status === 408) throw new ProviderError('ambiguous', 'timeout', `${label}: upstream timeout (408)`, { status: 408 });
    if (res.status >= 400 && res.status < 500) {
      throw new ProviderError('definite', 'rejected', `${label}: refused (${res.status})`, { status: res.status });
    }
    throw malformed(label, `unexpected status ${res.status}`, res.status);
  }

  private serviceCode(service: string): string {
    const code = this.serviceCodes[service];
    if (code === undefined) throw new ProviderError('definite', 'rejected', `sms-activate: no service code configured for ${service}`);
    return code;
  }

  private countryId(country: string): string {
    const id = this.countryCodes[country];
    if (id === undefined) throw new ProviderError('definite', 'rejected', `sms-activate: no country id configured for ${country}`);
    return id;
  }

  private ourService(code: string): string {
    for (const [service, theirs] of Object.entries(this.serviceCodes)) if (theirs === code) return service;
    return code;
  }
}

/** `STATUS_OK:<value>`: usually the code, from some sellers the whole text. */
function smsFromValue(value: string): ReportedSms {
  const text = value.trim();
  if (/^[A-Za-z0-9-]{3,12}$/.test(text)) return { code: text, text };
  const digits = /\b\d{4,8}\b/.exec(text);
  return { code: digits ? digits[0] : null, text };
}

/** Same SMS, same id, however often and through whichever action it is polled. */
function messageId(activationId: string, sms: ReportedSms): string {
  const basis = sms.code ?? sms.text;
  return createHash('sha256').update(`${activationId}\n${basis}`).digest('hex').slice(0, 32);
}

/** A stated cost in minor units; a cost that is stated but unreadable makes the whole answer malformed. */
function costOrNull(value: string | number | null | undefined, label: string): number | null {
  if (value === null || value === undefined || value === '') return null;
  const minor = decimalToMinor(value, 'up');
  if (minor === null) throw malformed(label, `unusable cost ${String(value)}`);
  return minor;
}
