/**
 * The SMS-Activate `handler_api.php` protocol, spoken by many sellers (SMS-Activate itself until
 * its shutdown, DaisySMS, HeroSMS, Grizzly, SMS-Man, …). One URL, `api_key` + `action` parameters.
 * What each seller does differently is an option here; `sellers.ts` holds the known sellers' sets.
 *
 * The protocol has no idempotency key and no client reference, so an unclear purchase can only be
 * matched afterwards by what it looks like in the active-activations list (see `lookup`). Prices
 * are read as major units of the installation currency: a seller account in another currency is
 * refused as soon as the seller says so (or the operator states it).
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../clock.ts';
import { decimalToMinor, malformed, minorToDecimalString, sendUpstream, validateShape } from '../http.ts';
import { createPacer, type Pacer } from '../pacing.ts';
import {
  ProviderError,
  type ActiveOrder,
  type AnotherCodeTerms,
  type AnotherCodeOrder,
  type CancelOutcome,
  type CatalogueEntry,
  type LookupRequest,
  type LookupResult,
  type OrderCheck,
  type OrderRef,
  type Provider,
  type ProviderMessage,
  type ProviderOrder,
  type NumberOptions,
  type ProviderCapabilities,
  type PurchaseRequest,
} from '../provider.ts';
import { DEFAULT_RATE_LIMIT_BACKOFF, retryWhenRateLimited, type RateLimitBackoff } from '../retry.ts';
import {
  activeActivationsSchema,
  currencyOf,
  errorFor,
  GONE_TOKENS,
  infoNumber,
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

export type PurchaseAction = 'getNumber' | 'getNumberV2';

export interface SmsActivateOptions {
  /** The configured name of this seller (default "sms-activate"): what its verifications record. */
  name?: string;
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
  /** The installation currency (default "USD"): prices and balance are read as its major units. */
  currency?: string;
  /**
   * The seller account's currency, when the operator knows it and the seller does not say it in
   * what we read. Any other currency than `currency` refuses every purchase.
   */
  sellerCurrency?: string;
  /**
   * The purchase action (default getNumber, which every seller serves). getNumberV2 answers JSON with
   * the end time, cost and currency, but not every seller serves it, or serves it as documented.
   */
  purchaseAction?: PurchaseAction;
  /** Send `country` with purchases and price lists (default true; DaisySMS asks clients not to). */
  sendCountry?: boolean;
  /**
   * The price list: getPrices (country → service, default) or getPricesVerification (service →
   * country, with each service's lifetime: DaisySMS).
   */
  pricesAction?: 'getPrices' | 'getPricesVerification';
  /**
   * getActiveActivations is read in pages of this many (sent as start/limit; default 10, the old
   * list call's cap). A page this full may not be the last, and a seller that ignores paging makes
   * the list unprovable: "not in the list" then never counts as "absent".
   */
  activeListPageSize?: number;
  /** Pages read at most per list (default 10). */
  activeListMaxPages?: number;
  /** Wait suggested after EARLY_CANCEL_DENIED when the seller names none (default 120 s). */
  earlyCancelRetryAfterSeconds?: number;
  /** Lookup: activations created this long before our request still count (clock skew; default 60 s). */
  lookupSkewSeconds?: number;
  /** Lookup: until this long after the request, "not in the list yet" is unknown, not absent (default 120 s). */
  lookupSettleSeconds?: number;
  /**
   * Activation lifetime assumed when the seller states none (default 1200 s, the 20 minutes most
   * sellers use); null leaves endsAt null. With getPricesVerification, the seller's per-service
   * lifetime wins.
   */
  activationLifetimeSeconds?: number | null;
  /** UTC offset of the seller's zone-less timestamps (default 180: SMS-Activate wrote Moscow time). */
  sellerUtcOffsetMinutes?: number;
  /** How long catalogue() answers from cache (default 600 s). */
  catalogueTtlSeconds?: number;
  /** Waiting out 429s on price-list reads. */
  rateLimitBackoff?: RateLimitBackoff;
  /** Told about what an operator must fix (a currency mismatch), every time it refuses a purchase. */
  alarm?: (message: string, detail: Record<string, unknown>) => void;
  /**
   * How the seller lets a purchase choose the number: `operator` (the protocol's `operator`
   * parameter: carriers, comma-separated; default) or `areas-carriers` (DaisySMS: `areas` with US
   * area codes and `carriers`, each comma-separated).
   */
  numberChoice?: 'operator' | 'areas-carriers';
  /** Carrier names the seller accepts, when known (DaisySMS: tmo, vz, att); default any name. */
  carrierNames?: string[] | null;
  /** What the seller adds to the price for choosing area codes or carriers (minor units; default 0), sent up in maxPrice. */
  surcharges?: { areaCodeMinor: number; carrierMinor: number; voiceMinor: number };
  /**
   * How another code on a delivered number is asked for: `setStatus3` (the protocol's: the same
   * activation, free; default) or `getExtraActivation` (DaisySMS: a new activation of the same
   * number, charged like a purchase).
   */
  anotherCodeAction?: 'setStatus3' | 'getExtraActivation';
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

/** A read of the active-activations list; `complete` says whether an absent order is provably absent. */
interface ActiveList {
  activations: Activation[];
  complete: boolean;
}

/** A code the seller reported, possibly with the full text; the basis of a stable message id. */
interface ReportedSms {
  code: string | null;
  text: string;
}

/** Stated lifetimes outside this range are not believed (a unit we misread would be worse than none). */
const PLAUSIBLE_LIFETIME_SECONDS = { min: 60, max: 86_400 };

export class SmsActivateProvider implements Provider {
  readonly name: string;
  readonly kind = 'sms-activate' as const;
  /** Carriers through `operator`; DaisySMS also US area codes. No voice in the protocol. */
  readonly capabilities: ProviderCapabilities;
  /** setStatus 3: free, the same activation; getExtraActivation: charged, a new activation. */
  readonly anotherCodeTerms: AnotherCodeTerms;

  private readonly options: SmsActivateOptions;
  private readonly clock: Clock;
  private readonly pacer: Pacer;
  private readonly countryCodes: Record<string, string>;
  private readonly serviceCodes: Record<string, string>;
  private readonly lifetimeMs: number | null;
  private readonly utcOffset: number;
  private readonly currency: string;
  /** The seller account's currency, as stated by the operator or learned from the seller's answers. */
  private sellerCurrency: string | undefined;
  // Learned from the seller: a BAD_ACTION answer means the action does not exist there.
  private numberV2: 'unknown' | 'supported' | 'unsupported' = 'unknown';
  private fullSms: 'unknown' | 'supported' | 'unsupported' = 'unknown';
  private activeList: 'unknown' | 'supported' | 'unsupported' = 'unknown';
  private catalogueCache: { entries: CatalogueEntry[]; until: number } | null = null;
  /** Seconds a number of each service code lives, as the seller's price list states it. */
  private readonly statedLifetimes = new Map<string, number>();

  constructor(options: SmsActivateOptions) {
    this.name = options.name ?? 'sms-activate';
    this.options = options;
    this.clock = options.clock;
    this.pacer = createPacer({ requestsPerSecond: options.requestsPerSecond ?? 10 });
    this.countryCodes = options.countryCodes ?? { ...DEFAULT_COUNTRY_CODES };
    this.serviceCodes = options.serviceCodes ?? { ...DEFAULT_SERVICE_CODES };
    const lifetime = options.activationLifetimeSeconds === undefined ? 1200 : options.activationLifetimeSeconds;
    this.lifetimeMs = lifetime === null ? null : lifetime * 1000;
    this.utcOffset = options.sellerUtcOffsetMinutes ?? 180;
    this.currency = (options.currency ?? 'USD').toUpperCase();
    this.sellerCurrency = options.sellerCurrency?.toUpperCase();
    const areas = options.numberChoice === 'areas-carriers';
    this.capabilities = {
      areaCodes: areas,
      carriers: true,
      voice: false,
      maxChoices: 10,
      carrierNames: options.carrierNames ?? null,
      areaCodeCountries: areas ? ['US'] : [],
      reportsCarrier: true,
      surcharge: options.surcharges ?? { areaCodeMinor: 0, carrierMinor: 0, voiceMinor: 0 },
    };
    const extra = options.anotherCodeAction === 'getExtraActivation';
    this.anotherCodeTerms = { charged: extra, newOrder: extra };
    new URL(options.baseUrl); // fail at start-up on a malformed URL, not at the first purchase
  }

  // ---- Provider ---------------------------------------------------------------------------------

  async catalogue(): Promise<CatalogueEntry[]> {
    const now = this.clock.now().getTime();
    if (this.catalogueCache && now < this.catalogueCache.until) return this.catalogueCache.entries;
    const entries = this.options.pricesAction === 'getPricesVerification' ? await this.pricesByService() : await this.pricesByCountry();
    if (entries.length === 0) {
      throw new ProviderError('definite', 'rejected', 'sms-activate catalogue: the seller offers none of the configured services in any configured country');
    }
    this.catalogueCache = { entries, until: now + (this.options.catalogueTtlSeconds ?? 600) * 1000 };
    return entries;
  }

  async buy(request: PurchaseRequest): Promise<ProviderOrder> {
    this.refuseForeignCurrency();
    const service = this.serviceCode(request.service);
    const country = this.countryId(request.country);
    if (!Number.isSafeInteger(request.maxCostMinor) || request.maxCostMinor <= 0) {
      throw new ProviderError('definite', 'rejected', `sms-activate: invalid price cap ${request.maxCostMinor}`);
    }
    // The cap always goes upstream: the seller refuses (WRONG_MAX_PRICE) rather than charging more.
    const params = this.withCountry({ service, maxPrice: minorToDecimalString(request.maxCostMinor), ...this.numberChoiceParams(request.options) }, country);
    const lifetimeMs = await this.lifetimeFor(service);
    const startedAt = this.clock.now();

    if (this.options.purchaseAction === 'getNumberV2' && this.numberV2 !== 'unsupported') {
      const label = 'sms-activate getNumberV2';
      const answer = await this.call('getNumberV2', params, true, label);
      const token = tokenOf(answer);
      if (token === 'BAD_ACTION' || token === 'WRONG_ACTION') {
        this.numberV2 = 'unsupported'; // nothing was bought: fall back to the classic action
      } else {
        this.numberV2 = 'supported';
        return this.orderFrom(answer, token, startedAt, lifetimeMs, label);
      }
    }
    const label = 'sms-activate getNumber';
    const answer = await this.call('getNumber', params, true, label);
    return this.orderFrom(answer, tokenOf(answer), startedAt, lifetimeMs, label);
  }

  /**
   * No client reference exists, so: the seller's active activations of the same service and
   * country, created no earlier than our request (minus skew), that no other verification claims.
   * Exactly one → found; several → unknown; none → unknown while the upstream may still be
   * finishing our request (settle window) or while the list may be incomplete, then absent.
   */
  async lookup(request: LookupRequest): Promise<LookupResult> {
    const service = this.serviceCodes[request.service];
    const country = this.countryCodes[request.country];
    if (service === undefined || country === undefined) return { status: 'absent' }; // buy() could not have sent it
    const { activations, complete } = await this.activeActivations('sms-activate getActiveActivations (lookup)');
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

    const [candidate, ...others] = candidates;
    if (candidate && others.length === 0 && undated === 0) {
      const lifetimeMs = await this.lifetimeFor(service);
      return {
        status: 'found',
        order: {
          providerOrderId: candidate.id,
          phoneNumber: candidate.phoneNumber,
          endsAt: endAfter(candidate.createdAt ?? request.requestedAt, lifetimeMs),
          costMinor: candidate.costMinor,
        },
      };
    }
    if (candidate || undated > 0 || !complete) return { status: 'unknown' };
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

  /** One list read for many orders; orders missing from it are left out (the caller checks them one by one). */
  async checkMany(orders: OrderRef[]): Promise<Map<string, OrderCheck>> {
    const result = new Map<string, OrderCheck>();
    if (orders.length === 0) return result;
    const { activations } = await this.activeActivations('sms-activate getActiveActivations');
    const byId = new Map(activations.map((a) => [a.id, a]));
    for (const order of orders) {
      const activation = byId.get(order.providerOrderId);
      if (!activation) continue;
      const reported: ReportedSms[] = activation.codes.map((code, i) => ({ code, text: activation.texts[i] ?? code }));
      // Text without a code: some sellers only fill smsText.
      for (const text of activation.texts.slice(activation.codes.length)) reported.push({ code: null, text });
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
    if (answer.kind === 'empty' && answer.status >= 200 && answer.status < 300) return { outcome: 'cancelled' };
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
        // HeroSMS names the minimum age (info.minActivationTime): waiting that long is always enough.
        return {
          outcome: 'too_early',
          retryAfterSeconds: infoNumber(answer, 'minActivationTime') ?? this.options.earlyCancelRetryAfterSeconds ?? 120,
        };
      case 'FREE_CANCELLATION_EXPIRED':
      case 'CANT_CANCEL':
        // The seller will not cancel any more; the activation runs out on its own.
        return { outcome: 'gone' };
      default:
        if (token !== null && GONE_TOKENS.has(token)) return { outcome: 'gone' };
        throw token === null ? malformed(label, `unexpected ${answer.kind} answer`, answer.status) : errorFor(token, answer, label, true);
    }
  }

  async complete(providerOrderId: string): Promise<'finished' | 'gone'> {
    const label = 'sms-activate setStatus 6 (complete)';
    const answer = await this.call('setStatus', { id: providerOrderId, status: '6' }, true, label);
    if (answer.kind === 'empty' && answer.status >= 200 && answer.status < 300) return 'finished';
    const token = tokenOf(answer);
    if (token === 'ACCESS_ACTIVATION') return 'finished';
    if (token === 'ALREADY_FINISH' || (token !== null && GONE_TOKENS.has(token))) return 'gone';
    throw token === null ? malformed(label, `unexpected ${answer.kind} answer`, answer.status) : errorFor(token, answer, label, true);
  }

  /**
   * Another SMS on the same activation (setStatus 3, free): the seller answers ACCESS_RETRY_GET and
   * getStatus then says STATUS_WAIT_RETRY:<previous code> until the next SMS. The activation id
   * stays the same. Any refusal (BAD_STATUS: not delivered, already finished or cancelled) is definite.
   */
  async anotherCode(order: OrderRef): Promise<AnotherCodeOrder> {
    if (this.options.anotherCodeAction === 'getExtraActivation') return this.extraActivation(order);
    const label = 'sms-activate setStatus 3 (another code)';
    const answer = await this.call('setStatus', { id: order.providerOrderId, status: '3' }, true, label);
    const accepted = (answer.kind === 'empty' && answer.status >= 200 && answer.status < 300) || tokenOf(answer) === 'ACCESS_RETRY_GET';
    if (accepted) return { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, endsAt: null, costMinor: 0 };
    const token = tokenOf(answer);
    if (token === null) throw malformed(label, `unexpected ${answer.kind} answer`, answer.status);
    // A word the protocol knows or not, the seller refused: nothing changed upstream.
    throw new ProviderError('definite', 'rejected', `${label}: refused (${token})`, { status: answer.status });
  }

  /**
   * DaisySMS's extra activation: `getExtraActivation&activationId=<previous>` sells a new activation
   * of the same number, `ACCESS_NUMBER:<id>:<number>` (the price in X-Price, like a purchase).
   * `ASLEEP:<id>:<number>:<unix time>` (clients also show a bare `ASLEEP[:<seconds>]`) means the
   * number is offline until then: we do not sell a wait on a sleeping number, so an activation the
   * answer names is cancelled at once (setStatus 8; the seller charges only on a code) and the
   * request is refused, definite, with the wait as retryAfterSeconds. BAD_ID (no such activation, or
   * it already had its extra), NO_MONEY and the other known refusals are definite; a word we do not
   * know on this charged call is ambiguous.
   */
  private async extraActivation(order: OrderRef): Promise<AnotherCodeOrder> {
    this.refuseForeignCurrency();
    const label = 'sms-activate getExtraActivation';
    const startedAt = this.clock.now();
    const answer = await this.call('getExtraActivation', { activationId: order.providerOrderId }, true, label);
    const token = tokenOf(answer);
    if (token === 'ACCESS_NUMBER') {
      const bought = this.orderFrom(answer, token, startedAt, this.lifetimeMs, label);
      return { providerOrderId: bought.providerOrderId, phoneNumber: bought.phoneNumber, endsAt: bought.endsAt, costMinor: bought.costMinor };
    }
    if (token === 'ASLEEP') {
      const fields = answer.kind === 'text' ? answer.fields : [];
      const asleepId = fields.length >= 2 ? normaliseId(fields[0]!) : null;
      const readyAt = fields.length >= 3 ? Number(fields[2]) * 1000 : fields.length === 1 ? startedAt.getTime() + Number(fields[0]) * 1000 : NaN;
      const retryAfterSeconds = Number.isFinite(readyAt) ? Math.max(1, Math.ceil((readyAt - startedAt.getTime()) / 1000)) : undefined;
      let dropped = 'no activation named';
      if (asleepId !== null) {
        try {
          const cancelled = await this.call('setStatus', { id: asleepId, status: '8' }, true, 'sms-activate setStatus 8 (sleeping extra activation)');
          dropped = `activation ${asleepId} cancelled: ${tokenOf(cancelled) ?? cancelled.kind}`;
        } catch (error) {
          // Left to the seller: it ends unused at its lifetime, charged only if a code comes.
          dropped = `activation ${asleepId} not cancelled (${error instanceof Error ? error.message : String(error)})`;
        }
      }
      throw new ProviderError('definite', 'rejected', `${label}: the number is asleep (${dropped})`, {
        status: answer.status,
        ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
      });
    }
    if (token === null) throw malformed(label, `unexpected ${answer.kind} answer`, answer.status);
    throw errorFor(token, answer, label, true);
  }

  /** The orders the seller lists as active (possibly not all of them: see activeListPageSize). */
  async activeOrders(): Promise<ActiveOrder[]> {
    const { activations } = await this.activeActivations('sms-activate getActiveActivations');
    return activations.map((a) => ({
      providerOrderId: a.id,
      phoneNumber: a.phoneNumber,
      service: this.ourService(a.serviceCode),
      createdAt: a.createdAt,
    }));
  }

  async balance(): Promise<{ amountMinor: number | null; currency: string }> {
    const label = 'sms-activate getBalance';
    const answer = await this.call('getBalance', {}, false, label);
    const token = tokenOf(answer);
    if (token !== 'ACCESS_BALANCE') {
      throw token === null ? malformed(label, `unexpected ${answer.kind} answer`, answer.status) : errorFor(token, answer, label, false);
    }
    // HeroSMS states three decimals ("ACCESS_BALANCE:2.225"): a balance rounds down.
    const amountMinor = decimalToMinor(restOf(answer), 'down');
    if (amountMinor === null) throw malformed(label, 'unusable balance');
    return { amountMinor, currency: this.sellerCurrency ?? this.currency };
  }

  // ---- Currency ---------------------------------------------------------------------------------

  /** Remembers the currency a seller's answer states (numeric ISO 4217 such as 840, or a code). */
  private noteSellerCurrency(value: unknown, where: string): void {
    const stated = currencyOf(value);
    if (stated === undefined || stated === this.sellerCurrency) return;
    this.sellerCurrency = stated;
    if (stated !== this.currency) {
      this.options.alarm?.(`sms-activate: ${where} states the seller account is in ${stated}, this installation sells in ${this.currency}`, {
        seller_currency: stated,
        currency: this.currency,
      });
    }
  }

  /** Prices, caps and costs would be read in the wrong currency: no purchase until the operator fixes it. */
  private refuseForeignCurrency(): void {
    if (this.sellerCurrency === undefined || this.sellerCurrency === this.currency) return;
    const message = `sms-activate: the seller account is in ${this.sellerCurrency}, this installation sells in ${this.currency}; refusing to buy`;
    this.options.alarm?.(message, { seller_currency: this.sellerCurrency, currency: this.currency });
    throw new ProviderError('definite', 'currency_mismatch', message);
  }

  // ---- Catalogue ----------------------------------------------------------------------------------

  /** getPrices: country → service → {cost, count}; per configured country, or once without `country`. */
  private async pricesByCountry(): Promise<CatalogueEntry[]> {
    const entries: CatalogueEntry[] = [];
    const sendCountry = this.options.sendCountry !== false;
    // One call per country, or one call for all when `country` is not sent.
    const asked: (string | undefined)[] = sendCountry ? Object.values(this.countryCodes) : [undefined];
    for (const countryAsked of asked) {
      const label = `sms-activate getPrices${countryAsked === undefined ? '' : ` ${countryAsked}`}`;
      const prices = await this.priceList('getPrices', countryAsked, label);
      if (prices === null) continue;
      const countries = Object.entries(this.countryCodes).filter(([, id]) => countryAsked === undefined || id === countryAsked);
      let matched = 0;
      for (const [country, countryId] of countries) {
        const byService = prices[countryId];
        if (byService === undefined) continue;
        matched += 1;
        for (const [service, code] of Object.entries(this.serviceCodes)) {
          if (byService[code] === undefined) continue;
          entries.push({ service, country, ...this.priceEntry(byService[code], `${label} ${code}`, code) });
        }
      }
      unexpectedCountries(prices, matched, label);
    }
    return entries;
  }

  /** getPricesVerification: service → country → {cost, count, ttl}, one call. */
  private async pricesByService(): Promise<CatalogueEntry[]> {
    const label = 'sms-activate getPricesVerification';
    const prices = await this.priceList('getPricesVerification', undefined, label);
    if (prices === null) return [];
    const entries: CatalogueEntry[] = [];
    const countryKeys = new Map<string, number>();
    for (const [service, code] of Object.entries(this.serviceCodes)) {
      const byCountry = prices[code];
      if (byCountry === undefined) continue;
      for (const key of Object.keys(byCountry)) countryKeys.set(key, (countryKeys.get(key) ?? 0) + 1);
      for (const [country, countryId] of Object.entries(this.countryCodes)) {
        const raw = (byCountry as Record<string, unknown>)[countryId];
        if (raw === undefined) continue;
        entries.push({ service, country, ...this.priceEntry(raw, `${label} ${code}`, code) });
      }
    }
    if (countryKeys.size > 0 && entries.length === 0) {
      throw new ProviderError('definite', 'malformed_response', `${label}: prices keyed by country ${[...countryKeys.keys()].join(', ')}, none of them configured`);
    }
    return entries;
  }

  /** A price list, waiting out 429s; null when the seller refuses it (it does not serve the request). */
  private async priceList(action: string, countryId: string | undefined, label: string): Promise<Record<string, Record<string, unknown>> | null> {
    const answer = await retryWhenRateLimited(
      () => this.call(action, this.withCountry({}, countryId), false, label),
      this.options.rateLimitBackoff ?? DEFAULT_RATE_LIMIT_BACKOFF,
    );
    const token = tokenOf(answer);
    if (token !== null) {
      const error = errorFor(token, answer, label, false);
      // A country this seller does not serve is left out; anything else fails the catalogue.
      if (error.code === 'rejected' || error.code === 'no_numbers') return null;
      throw error;
    }
    if (answer.kind !== 'json') throw malformed(label, 'expected JSON prices');
    return validateShape(pricesSchema, answer.value, label);
  }

  private priceEntry(raw: unknown, label: string, code: string): { costMinor: number; available: number | null } {
    const entry = validateShape(priceEntrySchema, raw, label);
    const costMinor = decimalToMinor(entry.cost, 'up');
    if (costMinor === null) throw malformed(label, `unusable price ${String(entry.cost)}`);
    const count = entry.count === null || entry.count === undefined ? null : Number(entry.count);
    const ttl = entry.ttl === null || entry.ttl === undefined ? null : Number(entry.ttl);
    if (ttl !== null && Number.isInteger(ttl) && ttl >= PLAUSIBLE_LIFETIME_SECONDS.min && ttl <= PLAUSIBLE_LIFETIME_SECONDS.max) {
      this.statedLifetimes.set(code, ttl);
    }
    return { costMinor, available: count !== null && Number.isSafeInteger(count) && count >= 0 ? count : null };
  }

  /**
   * How long a number of this service lives: the seller's stated lifetime when its price list gives
   * one (read at most once per catalogue period), else the configured assumption.
   */
  private async lifetimeFor(serviceCode: string): Promise<number | null> {
    if (this.options.pricesAction === 'getPricesVerification' && !this.statedLifetimes.has(serviceCode) && !this.catalogueCache) {
      try {
        await this.catalogue();
      } catch (error) {
        // Without the price list the shorter configured assumption stands; the purchase goes on.
        if (!(error instanceof ProviderError)) throw error;
      }
    }
    const stated = this.statedLifetimes.get(serviceCode);
    return stated === undefined ? this.lifetimeMs : stated * 1000;
  }

  // ---- Internals --------------------------------------------------------------------------------

  /** The seller's parameters for area codes and carriers (only what `honours` let through reaches here). */
  private numberChoiceParams(options: NumberOptions | undefined): Record<string, string> {
    const params: Record<string, string> = {};
    const carriers = options?.carriers ?? [];
    const areas = options?.areaCodes ?? [];
    if (this.options.numberChoice === 'areas-carriers') {
      if (areas.length > 0) params.areas = areas.join(',');
      if (carriers.length > 0) params.carriers = carriers.join(',');
    } else if (carriers.length > 0) {
      params.operator = carriers.join(',');
    }
    return params;
  }

  private orderFrom(answer: Answer, token: string | null, startedAt: Date, lifetimeMs: number | null, label: string): ProviderOrder {
    // DaisySMS states the effective price in a header (it may be below the cap we sent).
    const headerCost = answer.headers.get('x-price');
    if (token === 'ACCESS_NUMBER') {
      if (answer.kind !== 'text' || answer.fields.length !== 2) throw malformed(label, 'ACCESS_NUMBER without id and number');
      const id = normaliseId(answer.fields[0]!);
      const phone = normalisePhone(answer.fields[1]!);
      if (id === null || phone === null) throw malformed(label, 'ACCESS_NUMBER with an unusable id or number');
      return { providerOrderId: id, phoneNumber: phone, endsAt: endAfter(startedAt, lifetimeMs), costMinor: this.costInOurCurrency(headerCost, label) };
    }
    if (token !== null) throw errorFor(token, answer, label, true);
    if (answer.kind !== 'json') throw malformed(label, `unexpected ${answer.kind} answer`, answer.status);
    const order = validateShape(numberV2Schema, answer.value, label, answer.status);
    // Bought already: the order is used; what it reveals about the account stops the next purchase.
    this.noteSellerCurrency(order.currency, 'a purchase answer');
    const createdAt = parseSellerTime(order.activationTime, this.utcOffset);
    const statedEnd = parseSellerTime(order.activationEndTime, this.utcOffset);
    const cost = order.activationCost === null || order.activationCost === undefined ? headerCost : order.activationCost;
    // "any" is what sellers write when no operator was asked for: it says nothing about the number.
    const carrier = order.activationOperator && order.activationOperator.toLowerCase() !== 'any' ? order.activationOperator : null;
    return {
      providerOrderId: order.activationId,
      phoneNumber: order.phoneNumber,
      endsAt: statedEnd ?? endAfter(createdAt ?? startedAt, lifetimeMs),
      costMinor: this.costInOurCurrency(cost, label),
      ...(carrier === null ? {} : { carrier }),
    };
  }

  /** A cost in our minor units, or null when it is in another currency than ours. */
  private costInOurCurrency(value: string | number | null | undefined, label: string): number | null {
    if (this.sellerCurrency !== undefined && this.sellerCurrency !== this.currency) return null;
    return costOrNull(value, label);
  }

  private pastLifetime(order: OrderRef): boolean {
    return this.lifetimeMs !== null && this.clock.now().getTime() >= order.since.getTime() + this.lifetimeMs;
  }

  /**
   * The seller's active activations, page by page (start/limit). Complete only when a page came back
   * short; a page that repeats what we already have means the seller ignores paging and the rest is
   * out of sight.
   */
  private async activeActivations(label: string): Promise<ActiveList> {
    if (this.activeList === 'unsupported') return { activations: [], complete: false };
    const pageSize = this.options.activeListPageSize ?? 10;
    const maxPages = this.options.activeListMaxPages ?? 10;
    const seen = new Map<string, Activation>();
    for (let page = 0; page < maxPages; page += 1) {
      const answer = await this.call('getActiveActivations', { start: String(page * pageSize), limit: String(pageSize) }, false, label);
      const token = tokenOf(answer);
      if (token === 'NO_ACTIVATIONS') return { activations: [...seen.values()], complete: true };
      if (token === 'BAD_ACTION' || token === 'WRONG_ACTION') {
        // The seller has no list: nothing can be proven absent, orphans cannot be listed.
        this.activeList = 'unsupported';
        return { activations: [], complete: false };
      }
      if (token !== null) throw errorFor(token, answer, label, false);
      if (answer.kind !== 'json') throw malformed(label, `unexpected ${answer.kind} answer`, answer.status);
      this.activeList = 'supported';
      const body = validateShape(activeActivationsSchema, answer.value, label, answer.status);
      const raw = 'data' in body ? body.data : body.activeActivations;
      const list: ActiveActivationWire[] = Array.isArray(raw) ? raw : Object.values(raw);
      let fresh = 0;
      for (const wire of list) {
        this.noteSellerCurrency(wire.currency, 'the active-activations list');
        if (seen.has(wire.activationId)) continue;
        fresh += 1;
        seen.set(wire.activationId, this.activationFrom(wire, label));
      }
      if (list.length < pageSize) return { activations: [...seen.values()], complete: true };
      if (fresh === 0) break;
    }
    return { activations: [...seen.values()], complete: false };
  }

  private activationFrom(a: ActiveActivationWire, label: string): Activation {
    return {
      id: a.activationId,
      serviceCode: a.serviceCode,
      phoneNumber: a.phoneNumber,
      costMinor: this.costInOurCurrency(a.activationCost, label),
      countryCode: a.countryCode === null || a.countryCode === undefined ? null : String(a.countryCode),
      createdAt: parseSellerTime(a.activationTime, this.utcOffset),
      codes: a.smsCode,
      texts: a.smsText,
    };
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

  /** `country` goes upstream unless the seller asks clients not to send it. */
  private withCountry(params: Record<string, string>, countryId: string | undefined): Record<string, string> {
    return countryId === undefined || this.options.sendCountry === false ? params : { ...params, country: countryId };
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

function endAfter(from: Date, lifetimeMs: number | null): Date | null {
  return lifetimeMs === null ? null : new Date(from.getTime() + lifetimeMs);
}

/** A price list keyed by other countries than the ones asked for is an error, never an empty catalogue. */
function unexpectedCountries(prices: Record<string, unknown>, matched: number, label: string): void {
  const keys = Object.keys(prices);
  if (matched === 0 && keys.length > 0) {
    throw new ProviderError('definite', 'malformed_response', `${label}: prices keyed by country ${keys.slice(0, 5).join(', ')}, none of them configured`);
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
