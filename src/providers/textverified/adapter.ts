/**
 * TextVerified API v2 (https://www.textverified.com/docs/api/v2), US numbers.
 *
 * What makes this upstream safe to buy from: the create call takes an `Idempotency-Key` (our
 * verification id), so an unclear purchase is resolved by asking again with the same key — the
 * upstream answers with the same verification instead of selling a second one. Everything else
 * follows the API's links (HATEOAS) and validates each answer before using it.
 */
import type { z } from 'zod';
import type { Clock } from '../../clock.ts';
import { createPacer, type Pacer } from '../pacing.ts';
import { DEFAULT_RATE_LIMIT_BACKOFF, retryWhenRateLimited, type RateLimitBackoff } from '../retry.ts';
import {
  decimalToMinor,
  looksLikeHtml,
  malformed,
  minorToDecimalString,
  parseJsonBody,
  sendUpstream,
  snippet,
  validateShape,
  type UpstreamResponse,
} from '../http.ts';
import {
  ProviderError,
  type ActiveOrder,
  type AnotherCodeOrder,
  type AnotherCodeTerms,
  type CancelOutcome,
  type CatalogueEntry,
  type LookupRequest,
  type LookupResult,
  type NumberOptions,
  type OrderCheck,
  type ProviderCapabilities,
  type OrderRef,
  type Provider,
  type ProviderOrder,
  type ProviderWebhooks,
  type PurchaseRequest,
  type UpstreamOrderState,
} from '../provider.ts';
import { messageFromCall, messageFromSms } from './messages.ts';
import {
  accountSchema,
  areaCodesSchema,
  bearerTokenSchema,
  callSchema,
  errorBodySchema,
  linkSchema,
  paginated,
  pricingSchema,
  servicesSchema,
  smsSchema,
  verificationCompactSchema,
  verificationSchema,
  type Call,
  type Sms,
  type Verification,
} from './schemas.ts';
import { textVerifiedWebhooks } from './webhook.ts';

export interface TextVerifiedOptions {
  /** The configured name of this upstream (default "textverified"). */
  name?: string;
  /** e.g. "https://www.textverified.com" (no trailing /api path). */
  baseUrl: string;
  /** The account e-mail, sent as X-API-USERNAME. */
  apiUsername: string;
  apiKey: string;
  /** Calls started per second (default 5); 0 or Infinity disables pacing. */
  requestsPerSecond?: number;
  /** Per-request timeout, including reading the body (default 20 000 ms). */
  timeoutMs?: number;
  clock: Clock;
  /** Our service name → TextVerified serviceName; unmapped names are sent unchanged. */
  serviceNames?: Record<string, string>;
  /** TextVerified serviceNames to price in catalogue(); default every SMS-capable service listed. */
  catalogueServices?: string[];
  /** How long catalogue() answers from cache (default 3600 s). */
  catalogueTtlSeconds?: number;
  /** Wait suggested when the upstream refuses a cancel that is not yet allowed (default 60 s). */
  cancelRetryAfterSeconds?: number;
  /**
   * How long after the purchase lookup() may re-issue the create with the same Idempotency-Key
   * (default 3600 s). TextVerified does not publish how long it keeps keys; past this window a
   * re-issued create could be a second purchase, so lookup() searches the verification list instead.
   */
  idempotencyWindowSeconds?: number;
  /** Clock difference tolerated when matching list entries by creation time (default 60 s). */
  lookupSkewSeconds?: number;
  /** Refresh the bearer token this long before it expires (default 60 s). */
  tokenRefreshMarginSeconds?: number;
  /** Safety bound on followed `links.next` pages (default 20). */
  maxPages?: number;
  /**
   * The installation currency (default "USD"). TextVerified bills in US dollars: any other
   * currency refuses every purchase, as prices and caps would be read in the wrong unit.
   */
  currency?: string;
  /** The `whsec_…` secret of the webhook endpoint; without it the adapter has no webhook capability. */
  webhookSecret?: string;
  /** Waiting out 429s on catalogue reads, which TextVerified documents as rate-limited. */
  rateLimitBackoff?: RateLimitBackoff;
  /**
   * What TextVerified adds to a verification's price for choosing area codes or carriers, or for
   * voice (minor units; default 0). Sent up inside `maxPrice`: a surcharge set too low makes the
   * upstream refuse (PricingFailure, nothing bought), never overcharge.
   */
  surcharges?: { areaCodeMinor: number; carrierMinor: number; voiceMinor: number };
}

const API = '/api/pub/v2';
/** TextVerified's prices, costs and balances are US dollars. */
const ACCOUNT_CURRENCY = 'USD';

/** Create refusals that prove nothing was bought (documented mock error matrix). */
const PURCHASE_REFUSALS: Record<string, { code: 'no_numbers' | 'price_exceeds_max' | 'upstream_balance' | 'rejected' }> = {
  Unavailable: { code: 'no_numbers' },
  PricingFailure: { code: 'price_exceeds_max' },
  InsufficientBalance: { code: 'upstream_balance' },
  TooManyUnfinishedVerifications: { code: 'rejected' },
};

type CreateOutcome =
  | { type: 'created'; url: URL }
  | { type: 'refused'; status: number; errorCode: string | null; description: string | null };

/** TextVerified reservation states → what the lifecycle needs to know. */
export function mapVerificationState(state: string, hasMessages: boolean): UpstreamOrderState {
  switch (state) {
    case 'verificationPending':
      return hasMessages ? 'received' : 'waiting';
    case 'verificationCompleted':
    case 'verificationReused':
    case 'verificationReactivated':
      return hasMessages ? 'received' : 'completed';
    case 'verificationCanceled':
    case 'verificationRefunded':
    case 'verificationReported':
      return 'cancelled';
    case 'verificationTimedOut':
      return 'expired';
    default:
      return 'unknown';
  }
}

export class TextVerifiedProvider implements Provider {
  readonly name: string;
  readonly kind = 'textverified' as const;
  readonly webhooks?: ProviderWebhooks;
  /**
   * US numbers: area codes (`areaCodeSelectOption`), carriers (`carrierSelectOption`, names such as
   * vz, tmo, att, passed on as given) and voice (`capability: voice`). The verification does not say
   * which carrier it got, so only the area code of the assigned number can be checked.
   */
  readonly capabilities: ProviderCapabilities;
  /**
   * Reuse: `POST /verifications/{id}/reuse` answers 201 with a link to a *new* verification on the
   * same number (the document's mock_ver_reused, "created by a reuse action"). It takes no maxPrice,
   * unlike every charged action of the API, and the FAQ charges only verifications that get a code;
   * we sell it free (docs/providers.md, "Reuse").
   */
  readonly anotherCodeTerms: AnotherCodeTerms = { charged: false, newOrder: true };

  private readonly baseUrl: string;
  private readonly origin: string;
  private readonly clock: Clock;
  private readonly pacer: Pacer;
  private readonly timeoutMs: number;
  private readonly options: TextVerifiedOptions;
  private token: { value: string; refreshAt: number } | null = null;
  private tokenInFlight: Promise<string> | null = null;
  // TextVerified asks for reservation-changing calls one at a time per account.
  private writeQueue: Promise<unknown> = Promise.resolve();
  private catalogueCache: { entries: CatalogueEntry[]; until: number } | null = null;

  constructor(options: TextVerifiedOptions) {
    this.name = options.name ?? 'textverified';
    this.options = options;
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.origin = new URL(this.baseUrl).origin;
    this.clock = options.clock;
    this.timeoutMs = options.timeoutMs ?? 20_000;
    this.pacer = createPacer({ requestsPerSecond: options.requestsPerSecond ?? 5 });
    this.capabilities = {
      areaCodes: true,
      carriers: true,
      voice: true,
      maxChoices: 10,
      carrierNames: null,
      areaCodeCountries: ['US'],
      reportsCarrier: false,
      surcharge: options.surcharges ?? { areaCodeMinor: 0, carrierMinor: 0, voiceMinor: 0 },
    };
    if (options.webhookSecret) this.webhooks = textVerifiedWebhooks(options.webhookSecret);
  }

  // ---- Provider ---------------------------------------------------------------------------------

  async catalogue(): Promise<CatalogueEntry[]> {
    const now = this.clock.now().getTime();
    if (this.catalogueCache && now < this.catalogueCache.until) return this.catalogueCache.entries;

    const label = 'textverified services';
    const backoff = this.options.rateLimitBackoff ?? DEFAULT_RATE_LIMIT_BACKOFF;
    const res = await retryWhenRateLimited(
      () => this.authorisedCall({ method: 'GET', url: this.apiUrl('/services?numberType=mobile&reservationType=verification'), label, mutating: false }),
      backoff,
    );
    const services = validateShape(servicesSchema, this.okJson(res, label), label);
    const wanted = this.options.catalogueServices ? new Set(this.options.catalogueServices) : null;
    const names = services
      .filter((s) => s.capability === 'sms' || s.capability === 'smsAndVoiceCombo')
      .filter((s) => (wanted ? wanted.has(s.serviceName) : true));
    const voiceNames = new Set(names.filter((s) => s.capability === 'smsAndVoiceCombo').map((s) => s.serviceName));

    const entries: CatalogueEntry[] = [];
    // One at a time, waiting out 429s: pricing is one of the calls TextVerified rate-limits.
    for (const serviceName of new Set(names.map((s) => s.serviceName))) {
      const priceLabel = `textverified pricing ${serviceName}`;
      const priced = await retryWhenRateLimited(
        () =>
          this.authorisedCall({
            method: 'POST',
            url: this.apiUrl('/pricing/verifications'),
            body: { serviceName, areaCode: false, carrier: false, numberType: 'mobile', capability: 'sms' },
            label: priceLabel,
            mutating: false,
          }),
        backoff,
      );
      // A service that cannot be priced right now is left out rather than failing the catalogue.
      if (priced.status >= 400 && priced.status < 500) continue;
      const price = validateShape(pricingSchema, this.okJson(priced, priceLabel), priceLabel);
      const costMinor = decimalToMinor(price.price, 'up');
      if (costMinor === null) throw malformed(priceLabel, `unusable price ${price.price}`);
      entries.push({ service: this.ourServiceName(serviceName), country: 'US', costMinor, available: null, ...(voiceNames.has(serviceName) ? { voice: true } : {}) });
    }
    const ttl = (this.options.catalogueTtlSeconds ?? 3600) * 1000;
    this.catalogueCache = { entries, until: now + ttl };
    return entries;
  }

  async buy(request: PurchaseRequest): Promise<ProviderOrder> {
    this.assertPurchasable(request.country, request.maxCostMinor, request.clientRef);
    const outcome = await this.postCreate(request.clientRef, this.theirServiceName(request.service), request.maxCostMinor, request.options);
    if (outcome.type === 'refused') throw refusalError(outcome);
    // From here an order exists upstream: any failure to read it is ambiguous, resolved by lookup().
    try {
      const details = await this.fetchVerification(outcome.url, 'textverified verification after create');
      if (details === null) throw malformed('textverified verification after create', 'created verification not found', 404);
      return this.toOrder(details);
    } catch (error) {
      throw asAmbiguous(error);
    }
  }

  async lookup(request: LookupRequest): Promise<LookupResult> {
    if (request.country !== 'US') return { status: 'absent' };
    const now = this.clock.now().getTime();
    const windowMs = (this.options.idempotencyWindowSeconds ?? 3600) * 1000;
    if (now - request.requestedAt.getTime() > windowMs) return this.lookupInList(request);

    // Documented retry: the same key returns the same 201 and never buys twice.
    const outcome = await this.postCreate(request.clientRef, this.theirServiceName(request.service), request.maxCostMinor, request.options);
    if (outcome.type === 'refused') {
      // A plain purchase refusal on the retry means the key was unused: the first call bought nothing.
      if (outcome.status === 400 && outcome.errorCode !== null && outcome.errorCode in PURCHASE_REFUSALS) {
        return { status: 'absent' };
      }
      // 409 IdempotencyConflict (still running), 400 for a key that expired unfinished, anything else.
      return { status: 'unknown' };
    }
    const details = await this.fetchVerification(outcome.url, 'textverified verification after create');
    if (details === null || request.claimedOrderIds.has(details.id)) return { status: 'unknown' };
    return { status: 'found', order: this.toOrder(details) };
  }

  async check(order: OrderRef): Promise<OrderCheck> {
    const details = await this.fetchVerification(this.verificationUrl(order.providerOrderId), 'textverified verification');
    if (details === null) return { state: 'unknown', messages: [] };
    const messages = (await this.smsFor(details, order.since)).map(messageFromSms);
    // A voice order's call is listed apart (`calls` link). Calls count against the same rate
    // limit, so they are read only for voice orders, and only while no SMS has come for it.
    if (order.capability === 'voice' && messages.length === 0) {
      for (const call of await this.callsFor(details, order.since)) {
        const message = messageFromCall(call);
        if (message) messages.push(message);
      }
    }
    return { state: mapVerificationState(details.state, messages.length > 0), messages };
  }

  async cancel(providerOrderId: string): Promise<CancelOutcome> {
    const label = 'textverified cancel';
    const res = await this.serialised(() =>
      this.authorisedCall({
        method: 'POST',
        url: this.apiUrl(`/verifications/${encodeURIComponent(providerOrderId)}/cancel`),
        label,
        mutating: true,
      }),
    );
    if (res.status >= 200 && res.status < 300) {
      if (looksLikeHtml(res)) throw malformed(label, 'HTML answer to cancel', res.status);
      return { outcome: 'cancelled' };
    }
    if (res.status === 404) return { outcome: 'gone' };
    if (res.status !== 400) throw unexpectedStatus(label, res, true);

    // Refused: the verification itself tells us why.
    const details = await this.fetchVerification(this.verificationUrl(providerOrderId), 'textverified verification');
    if (details === null) return { outcome: 'gone' };
    const state = mapVerificationState(details.state, false);
    if (state === 'cancelled' || state === 'expired') return { outcome: 'gone' };
    if (state === 'completed') return { outcome: 'already_received' };
    if ((await this.smsFor(details, details.createdAt)).length > 0) return { outcome: 'already_received' };
    // cancel() is not told how the number was bought: a refused cancel of a voice order whose call
    // came is as final as one with an SMS (a rare path, so the extra read costs little).
    if (details.calls && (await this.callsFor(details, details.createdAt)).some((c) => messageFromCall(c) !== null)) {
      return { outcome: 'already_received' };
    }
    if (state === 'waiting' && !details.cancel.canCancel) {
      return { outcome: 'too_early', retryAfterSeconds: this.options.cancelRetryAfterSeconds ?? 60 };
    }
    throw new ProviderError('definite', 'rejected', `${label}: refused (400) while state is ${details.state}`, { status: 400 });
  }

  /**
   * Another code on the number: reuse of the verification, only inside its window
   * (`reuse.reusableUntil`, read first; the upstream's own rule, not ours). A closed window, an
   * unknown verification and a 400 from the reuse call are definite refusals; once the upstream
   * answered 201, a failure to read the new verification is ambiguous.
   */
  async anotherCode(order: OrderRef): Promise<AnotherCodeOrder> {
    const label = 'textverified reuse';
    const details = await this.fetchVerification(this.verificationUrl(order.providerOrderId), 'textverified verification (before reuse)');
    if (details === null) throw new ProviderError('definite', 'rejected', `${label}: verification ${order.providerOrderId} not found`, { status: 404 });
    const until = details.reuse?.reusableUntil ?? null;
    if (until === null || until.getTime() <= this.clock.now().getTime()) {
      throw new ProviderError('definite', 'rejected', `${label}: the reuse window is closed${until ? ` (it ended ${until.toISOString()})` : ''}`);
    }
    const res = await this.serialised(() =>
      this.authorisedCall({ method: 'POST', url: this.apiUrl(`/verifications/${encodeURIComponent(order.providerOrderId)}/reuse`), label, mutating: true }),
    );
    if (res.status >= 400 && res.status < 500 && !looksLikeHtml(res)) {
      // Documented: 400 when the verification is not eligible for reuse. Nothing was created.
      throw new ProviderError('definite', 'rejected', `${label}: refused (${res.status}) ${snippet(res.body)}`, { status: res.status });
    }
    if (res.status !== 201 && res.status !== 200) throw unexpectedStatus(label, res, true);
    try {
      const body = res.body.trim() === '' ? null : parseJsonBody(res, label);
      const link = body === null ? null : validateShape(linkSchema, body, label, res.status);
      const href = link?.href ?? res.headers.get('location');
      if (!href) throw malformed(label, 'reused without a verification link', res.status);
      const reused = await this.fetchVerification(this.followable(href, label), 'textverified verification after reuse');
      if (reused === null) throw malformed(label, 'reused verification not found', 404);
      const { providerOrderId, phoneNumber, endsAt, costMinor } = this.toOrder(reused);
      return { providerOrderId, phoneNumber, endsAt, costMinor };
    } catch (error) {
      throw asAmbiguous(error);
    }
  }

  async report(providerOrderId: string): Promise<void> {
    const label = 'textverified report';
    const res = await this.serialised(() =>
      this.authorisedCall({
        method: 'POST',
        url: this.apiUrl(`/verifications/${encodeURIComponent(providerOrderId)}/report`),
        label,
        mutating: true,
      }),
    );
    if (res.status >= 200 && res.status < 300) return;
    if (res.status >= 400 && res.status < 500) {
      throw new ProviderError('definite', 'rejected', `${label}: refused (${res.status}) ${snippet(res.body)}`, { status: res.status });
    }
    throw unexpectedStatus(label, res, true);
  }

  /**
   * A reported verification's fate, read from its details: verificationRefunded (the cost came back
   * to the account), verificationReported (not decided yet), anything else (kept charged).
   */
  async reportOutcome(providerOrderId: string): Promise<'refunded' | 'pending' | 'declined'> {
    const details = await this.fetchVerification(this.verificationUrl(providerOrderId), 'textverified report outcome');
    if (details === null) throw new ProviderError('definite', 'rejected', 'textverified report outcome: verification not found');
    if (details.state === 'verificationRefunded') return 'refunded';
    if (details.state === 'verificationReported') return 'pending';
    return 'declined';
  }

  async activeOrders(): Promise<ActiveOrder[]> {
    const { items } = await this.listVerifications();
    return items
      .filter((v) => v.state === 'verificationPending')
      .map((v) => ({ providerOrderId: v.id, phoneNumber: v.number, service: this.ourServiceName(v.serviceName), createdAt: v.createdAt }));
  }

  async balance(): Promise<{ amountMinor: number | null; currency: string }> {
    const label = 'textverified account';
    const res = await this.authorisedCall({ method: 'GET', url: this.apiUrl('/account/me'), label, mutating: false });
    const account = validateShape(accountSchema, this.okJson(res, label), label);
    if (account.currentBalance === null || account.currentBalance === undefined) return { amountMinor: null, currency: ACCOUNT_CURRENCY };
    const amountMinor = decimalToMinor(account.currentBalance, 'down');
    if (amountMinor === null) throw malformed(label, `unusable balance ${account.currentBalance}`);
    return { amountMinor, currency: ACCOUNT_CURRENCY };
  }

  // ---- Purchase internals -----------------------------------------------------------------------

  private assertPurchasable(country: string, maxCostMinor: number, clientRef: string): void {
    const currency = (this.options.currency ?? ACCOUNT_CURRENCY).toUpperCase();
    if (currency !== ACCOUNT_CURRENCY) {
      throw new ProviderError('definite', 'currency_mismatch', `textverified bills in ${ACCOUNT_CURRENCY}, this installation sells in ${currency}; refusing to buy`);
    }
    if (country !== 'US') {
      throw new ProviderError('definite', 'rejected', `textverified sells US numbers only, not ${country}`);
    }
    if (!Number.isSafeInteger(maxCostMinor) || maxCostMinor <= 0) {
      throw new ProviderError('definite', 'rejected', `textverified: invalid price cap ${maxCostMinor}`);
    }
    const key = clientRef.trim();
    if (key.length < 1 || key.length > 256) {
      throw new ProviderError('definite', 'rejected', 'textverified: Idempotency-Key must be 1 to 256 characters');
    }
  }

  /** `GET /area-codes`: the area codes TextVerified offers, with their US state. */
  async areaCodes(): Promise<{ areaCode: string; region: string | null }[]> {
    const label = 'textverified area codes';
    const res = await retryWhenRateLimited(
      () => this.authorisedCall({ method: 'GET', url: this.apiUrl('/area-codes'), label, mutating: false }),
      this.options.rateLimitBackoff ?? DEFAULT_RATE_LIMIT_BACKOFF,
    );
    return validateShape(areaCodesSchema, this.okJson(res, label), label).map((a) => ({ areaCode: a.areaCode, region: a.state ?? null }));
  }

  /** POST /verifications with our idempotency key; refusals are returned, transport failures thrown. */
  private async postCreate(clientRef: string, serviceName: string, maxCostMinor: number, options?: NumberOptions): Promise<CreateOutcome> {
    const label = 'textverified create verification';
    const res = await this.serialised(() =>
      this.authorisedCall({
        method: 'POST',
        url: this.apiUrl('/verifications'),
        headers: { 'Idempotency-Key': clientRef },
        // maxPrice is always sent: the upstream refuses (PricingFailure) rather than charging more.
        body: {
          serviceName,
          capability: options?.capability === 'voice' ? 'voice' : 'sms',
          ...(options?.areaCodes?.length ? { areaCodeSelectOption: options.areaCodes } : {}),
          ...(options?.carriers?.length ? { carrierSelectOption: options.carriers } : {}),
          maxPrice: Number(minorToDecimalString(maxCostMinor)),
        },
        label,
        mutating: true,
      }),
    );
    if (res.status === 201 || res.status === 200) {
      const body = res.body.trim() === '' ? null : parseJsonBody(res, label);
      const link = body === null ? null : validateShape(linkSchema, body, label, res.status);
      const href = link?.href ?? res.headers.get('location');
      if (!href) throw malformed(label, 'created without a verification link', res.status);
      return { type: 'created', url: this.followable(href, label) };
    }
    if (res.status >= 400 && res.status < 500) {
      const parsed = looksLikeHtml(res) ? null : safeJson(res.body);
      const error = errorBodySchema.safeParse(parsed);
      return {
        type: 'refused',
        status: res.status,
        errorCode: error.success ? error.data.errorCode : null,
        description: error.success ? (error.data.errorDescription ?? null) : null,
      };
    }
    throw unexpectedStatus(label, res, true);
  }

  private toOrder(details: Verification): ProviderOrder {
    const costMinor = decimalToMinor(details.totalCost, 'up');
    if (costMinor === null) throw malformed('textverified verification', `unusable totalCost ${details.totalCost}`);
    return { providerOrderId: details.id, phoneNumber: details.number, endsAt: details.endsAt, costMinor };
  }

  /** Past the idempotency window: one unclaimed verification of this service created after the request. */
  private async lookupInList(request: LookupRequest): Promise<LookupResult> {
    const serviceName = this.theirServiceName(request.service);
    const from = request.requestedAt.getTime() - (this.options.lookupSkewSeconds ?? 60) * 1000;
    const list = await this.listVerifications();
    const candidates = list.items.filter(
      (v) => v.serviceName === serviceName && v.createdAt.getTime() >= from && !request.claimedOrderIds.has(v.id),
    );
    const [candidate, ...others] = candidates;
    // "None" proves absence only when every page was read.
    if (!candidate) return { status: list.complete ? 'absent' : 'unknown' };
    if (others.length > 0) return { status: 'unknown' };
    const details = await this.fetchVerification(this.verificationUrl(candidate.id), 'textverified verification');
    if (details === null) return { status: 'unknown' };
    return { status: 'found', order: this.toOrder(details) };
  }

  // ---- Reads ------------------------------------------------------------------------------------

  /** The verification details, or null when the upstream does not know the id (404). */
  private async fetchVerification(url: URL, label: string): Promise<Verification | null> {
    const res = await this.authorisedCall({ method: 'GET', url, label, mutating: false });
    if (res.status === 404) return null;
    return validateShape(verificationSchema, this.okJson(res, label), label);
  }

  /**
   * This verification's SMS at or after `since`, from the list its `sms` link names (every page). A
   * message older than the purchase went to a previous holder of the number.
   */
  private async smsFor(details: Verification, since: Date): Promise<Sms[]> {
    const label = 'textverified sms';
    const { items } = await this.listPages(this.followable(details.sms.href, label), smsSchema, label);
    return items.filter((sms) => sms.createdAt.getTime() >= since.getTime());
  }

  /**
   * This verification's calls at or after `since`, from the list its `calls` link names (every
   * page), as the SMS are read. The document marks the link required: a voice order without one
   * cannot be read, and is not guessed at.
   */
  private async callsFor(details: Verification, since: Date): Promise<Call[]> {
    const label = 'textverified calls';
    if (!details.calls) throw malformed(label, 'verification without a calls link');
    const { items } = await this.listPages(this.followable(details.calls.href, label), callSchema, label);
    return items.filter((call) => call.createdAt.getTime() >= since.getTime());
  }

  private listVerifications() {
    return this.listPages(this.apiUrl('/verifications'), verificationCompactSchema, 'textverified verifications');
  }

  /** Follows `links.next` up to maxPages; `complete` says whether the last page was reached. */
  private async listPages<T extends z.ZodType>(first: URL, item: T, label: string): Promise<{ items: z.output<T>[]; complete: boolean }> {
    const schema = paginated(item);
    const items: z.output<T>[] = [];
    const maxPages = this.options.maxPages ?? 20;
    let url: URL | null = first;
    for (let page = 0; url && page < maxPages; page += 1) {
      const res = await this.authorisedCall({ method: 'GET', url, label, mutating: false });
      const body = validateShape(schema, this.okJson(res, label), label);
      items.push(...(body.data as z.output<T>[]));
      const next = body.links?.next?.href;
      url = next ? this.followable(next, label) : null;
    }
    return { items, complete: url === null };
  }

  // ---- Transport --------------------------------------------------------------------------------

  private apiUrl(path: string): URL {
    return new URL(`${this.baseUrl}${API}${path}`);
  }

  private verificationUrl(id: string): URL {
    return this.apiUrl(`/verifications/${encodeURIComponent(id)}`);
  }

  /** A link from an answer; only ever on the configured origin, since we send our token to it. */
  private followable(href: string, label: string): URL {
    let url: URL;
    try {
      url = new URL(href, `${this.baseUrl}/`);
    } catch {
      throw malformed(label, 'unusable link');
    }
    if (url.origin !== this.origin) throw malformed(label, `link to another origin (${url.origin})`);
    return url;
  }

  /** The JSON body of a 200 answer; any other status here is unexpected. */
  private okJson(res: UpstreamResponse, label: string): unknown {
    if (res.status !== 200) throw unexpectedStatus(label, res, false);
    return parseJsonBody(res, label);
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeQueue.then(fn, fn);
    this.writeQueue = run.catch(() => undefined);
    return run;
  }

  private async authorisedCall(call: {
    method: 'GET' | 'POST';
    url: URL;
    body?: unknown;
    headers?: Record<string, string>;
    label: string;
    mutating: boolean;
  }): Promise<UpstreamResponse> {
    const send = (token: string) =>
      this.send({
        ...call,
        headers: {
          Accept: 'application/json',
          Authorization: `Bearer ${token}`,
          ...(call.body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...call.headers,
        },
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
      });
    let token = await this.bearer();
    let res = await send(token);
    if (res.status !== 401) return res;
    // A 401 is answered before anything happens, so one retry with a fresh token is safe even for a create.
    this.dropToken(token);
    token = await this.bearer();
    res = await send(token);
    if (res.status === 401) {
      throw new ProviderError('definite', 'bad_credentials', `${call.label}: bearer token refused (401)`, { status: 401 });
    }
    return res;
  }

  private send(call: { method: 'GET' | 'POST'; url: URL; body?: string; headers: Record<string, string>; label: string; mutating: boolean }) {
    return this.pacer.schedule(() =>
      sendUpstream({ ...call, timeoutMs: this.timeoutMs, now: () => this.clock.now() }),
    );
  }

  private async bearer(): Promise<string> {
    if (this.token && this.clock.now().getTime() < this.token.refreshAt) return this.token.value;
    // Concurrent callers share one auth request: auth itself is rate-limited.
    this.tokenInFlight ??= this.authenticate().finally(() => {
      this.tokenInFlight = null;
    });
    return this.tokenInFlight;
  }

  private dropToken(token: string): void {
    if (this.token?.value === token) this.token = null;
  }

  private async authenticate(): Promise<string> {
    const label = 'textverified auth';
    const res = await this.send({
      method: 'POST',
      url: this.apiUrl('/auth'),
      headers: { Accept: 'application/json', 'X-API-KEY': this.options.apiKey, 'X-API-USERNAME': this.options.apiUsername },
      label,
      mutating: false,
    });
    if (res.status === 401 || res.status === 403 || res.status === 400) {
      throw new ProviderError('definite', 'bad_credentials', `${label}: credentials refused (${res.status})`, { status: res.status });
    }
    const body = validateShape(bearerTokenSchema, this.okJson(res, label), label);
    const now = this.clock.now().getTime();
    const expiresAt = body.expiresAt.getTime();
    const margin = Math.min((this.options.tokenRefreshMarginSeconds ?? 60) * 1000, Math.max(0, (expiresAt - now) / 2));
    this.token = { value: body.token, refreshAt: expiresAt - margin };
    return body.token;
  }

  private theirServiceName(service: string): string {
    return this.options.serviceNames?.[service] ?? service;
  }

  private ourServiceName(serviceName: string): string {
    for (const [ours, theirs] of Object.entries(this.options.serviceNames ?? {})) {
      if (theirs === serviceName) return ours;
    }
    return serviceName;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function refusalError(outcome: Extract<CreateOutcome, { type: 'refused' }>): ProviderError {
  const label = 'textverified create verification';
  const detail = `${outcome.status} ${outcome.errorCode ?? '(no error code)'}${outcome.description ? `: ${outcome.description}` : ''}`;
  if (outcome.status === 409) {
    // IdempotencyConflict: a create with this key is still running upstream.
    return new ProviderError('ambiguous', 'server_error', `${label}: ${detail}`, { status: 409 });
  }
  if (outcome.status === 408) {
    return new ProviderError('ambiguous', 'timeout', `${label}: ${detail}`, { status: 408 });
  }
  const known = outcome.status === 400 && outcome.errorCode !== null ? PURCHASE_REFUSALS[outcome.errorCode] : undefined;
  return new ProviderError('definite', known?.code ?? 'rejected', `${label}: ${detail}`, { status: outcome.status });
}

function unexpectedStatus(label: string, res: UpstreamResponse, mutating: boolean): ProviderError {
  if (looksLikeHtml(res)) return malformed(label, `HTML page with status ${res.status}`, res.status);
  if (!mutating && res.status >= 400 && res.status < 500) {
    return new ProviderError('definite', 'rejected', `${label}: ${res.status} ${snippet(res.body)}`, { status: res.status });
  }
  return malformed(label, `unexpected status ${res.status} ${snippet(res.body)}`, res.status);
}

/** After a purchase went through, every failure means "an order exists that we could not read". */
function asAmbiguous(error: unknown): ProviderError {
  if (error instanceof ProviderError) {
    if (error.kind === 'ambiguous') return error;
    return new ProviderError('ambiguous', error.code, `${error.message} (after the purchase was accepted)`, {
      status: error.status,
      retryAfterSeconds: error.retryAfterSeconds,
      cause: error,
    });
  }
  return new ProviderError('ambiguous', 'malformed_response', 'textverified: unexpected failure after the purchase was accepted', {
    cause: error,
  });
}
