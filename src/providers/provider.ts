/**
 * The contract every upstream adapter fulfils. The lifecycle only ever talks to upstreams through
 * this interface, and relies on one promise above all: every failure is classified.
 *
 * - definite: the upstream certainly did not create an order (nothing was bought). Safe to void.
 * - ambiguous: an order may exist upstream (timeout, dropped connection, 5xx after the request was
 *   sent, an unparseable answer). Never retried blindly; resolved later by `lookup`.
 */

/**
 * A configured upstream's name (PROVIDERS): the built-in `sandbox`, `textverified`, `sms-activate`,
 * or an operator's own name for another SMS-Activate-protocol seller (`daisysms`, `herosms`, …).
 * It is what a verification records as its provider; the protocol spoken is its kind.
 */
export type ProviderName = string;

/** The protocol an upstream speaks (which adapter serves it). */
export type ProviderKind = 'sandbox' | 'textverified' | 'sms-activate';

export type ProviderErrorCode =
  | 'no_numbers' // upstream has no number for this service/country (definite)
  | 'price_exceeds_max' // upstream price is above the cap we sent (definite)
  | 'rejected' // upstream refused the request: bad service, bad country, banned... (definite)
  | 'upstream_balance' // the operator's upstream float is empty (definite)
  | 'bad_credentials' // our API key/token is wrong (definite)
  | 'rate_limited' // 429 or a per-key limit (definite when the upstream says so before acting)
  | 'unavailable' // circuit open, upstream down before the request was sent (definite)
  | 'timeout' // no answer in time after sending (ambiguous)
  | 'connection_lost' // reset/dropped after sending (ambiguous)
  | 'server_error' // 5xx after sending (ambiguous)
  | 'malformed_response' // an answer that is not the documented shape, e.g. an HTML page (ambiguous)
  // A well-formed protocol answer in a word we do not know (a seller's own refusal): ambiguous on a
  // call that changes something, definite on a read. The upstream is working when it says it.
  | 'unrecognised_answer'
  // The seller's account is in another currency than the installation's (definite: nothing bought).
  | 'currency_mismatch';

export type FailureKind = 'definite' | 'ambiguous';

export class ProviderError extends Error {
  readonly kind: FailureKind;
  readonly code: ProviderErrorCode;
  /** Seconds the upstream asked us to wait, when it said so (429 Retry-After, early cancel). */
  readonly retryAfterSeconds?: number;
  /** HTTP status of the upstream answer, when there was one. */
  readonly status?: number;

  constructor(
    kind: FailureKind,
    code: ProviderErrorCode,
    message: string,
    options: { retryAfterSeconds?: number; status?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProviderError';
    this.kind = kind;
    this.code = code;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.status = options.status;
  }
}

export function isProviderError(error: unknown): error is ProviderError {
  return error instanceof ProviderError;
}

/** One purchasable offer upstream. Costs are integer minor units of the installation currency. */
export interface CatalogueEntry {
  service: string;
  country: string;
  costMinor: number;
  /** How many numbers the upstream says it has, when it says. */
  available: number | null;
  /** The upstream offers this service with a voice call (absent: SMS only). */
  voice?: boolean;
}

/** How the number is reached: by SMS (the default) or by a voice call whose code is transcribed. */
export type NumberCapability = 'sms' | 'voice';

/**
 * What a customer may ask of the number itself. Absent fields mean "any". Area codes are the three
 * digits after the country code of a North American number (NANP); carriers are the upstream's own
 * short names (e.g. TextVerified `vz`, `tmo`, `att`; an SMS-Activate seller's `operator`).
 */
export interface NumberOptions {
  areaCodes?: string[];
  carriers?: string[];
  capability?: NumberCapability;
}

/**
 * What an upstream can honour of NumberOptions, and what it charges on top of the offer's cost for
 * each (integer minor units of the installation currency; 0 when free). Purely descriptive: the
 * pure function `honours` (src/catalogue/number-options.ts) decides whether a request fits.
 */
export interface ProviderCapabilities {
  areaCodes: boolean;
  carriers: boolean;
  voice: boolean;
  /** At most this many area codes or carriers in one request. */
  maxChoices: number;
  /** Carrier names the upstream accepts, when it publishes a closed list; null = any name is passed on. */
  carrierNames: string[] | null;
  /** Countries for which area codes mean anything (NANP numbers). */
  areaCodeCountries: string[];
  /** Whether the upstream says which carrier it assigned (so a carrier request can be checked). */
  reportsCarrier: boolean;
  surcharge: { areaCodeMinor: number; carrierMinor: number; voiceMinor: number };
}

/** An upstream that honours none of the options: the default for adapters that do not declare any. */
export const PLAIN_CAPABILITIES: ProviderCapabilities = {
  areaCodes: false,
  carriers: false,
  voice: false,
  maxChoices: 0,
  carrierNames: null,
  areaCodeCountries: [],
  reportsCarrier: false,
  surcharge: { areaCodeMinor: 0, carrierMinor: 0, voiceMinor: 0 },
};

export interface PurchaseRequest {
  service: string;
  country: string;
  /** The most we are willing to pay upstream, integer minor units. Always sent upstream. */
  maxCostMinor: number;
  /** Our verification id: sent as the upstream's idempotency key / client reference where it has one. */
  clientRef: string;
  /** Area codes, carriers, voice: only ever what `honours(capabilities, options)` accepted. */
  options?: NumberOptions;
}

/** An order the upstream has created for us: a number assigned to one verification. */
export interface ProviderOrder {
  providerOrderId: string;
  /** E.164 without formatting, e.g. "14155550123". */
  phoneNumber: string;
  /** The upstream's own end of life for this order, when it states one. */
  endsAt: Date | null;
  /** What the upstream charged us, when it says (minor units). */
  costMinor: number | null;
  /** The carrier the upstream says it assigned, when it says. */
  carrier?: string | null;
}

export interface ProviderMessage {
  /** Stable id of this message upstream (or a digest of it), used to store each SMS once. */
  providerMessageId: string;
  text: string;
  code: string | null;
  receivedAt: Date;
}

export type UpstreamOrderState =
  | 'waiting' // live, no SMS yet
  | 'received' // at least one SMS
  | 'cancelled'
  | 'expired'
  | 'completed'
  | 'unknown';

export interface OrderCheck {
  state: UpstreamOrderState;
  /** Messages received for this order at or after `since`. Older messages are never returned. */
  messages: ProviderMessage[];
}

/** What we know about an order when we ask the upstream about it. */
export interface OrderRef {
  providerOrderId: string;
  phoneNumber: string;
  /** When we bought it; messages before this instant belong to a previous holder of the number. */
  since: Date;
  /** `voice` when the number was bought for a call: an upstream that lists calls apart reads them too. */
  capability?: NumberCapability;
}

export type CancelOutcome =
  | { outcome: 'cancelled' }
  | { outcome: 'already_received' }
  | { outcome: 'too_early'; retryAfterSeconds: number }
  | { outcome: 'gone' }; // the upstream no longer knows it or already closed it: nothing to cancel

/** Looking an uncertain purchase up afterwards. */
export interface LookupRequest {
  clientRef: string;
  service: string;
  country: string;
  maxCostMinor: number;
  /** The options the purchase was made with (an upstream that re-issues the create must repeat them). */
  options?: NumberOptions;
  /** When our purchase request was sent. */
  requestedAt: Date;
  /** Order ids already attached to other verifications: never adopt one of these. */
  claimedOrderIds: ReadonlySet<string>;
}

export type LookupResult =
  | { status: 'found'; order: ProviderOrder }
  | { status: 'absent' } // provably never created
  | { status: 'unknown' }; // cannot tell (yet)

export interface ActiveOrder {
  providerOrderId: string;
  phoneNumber: string;
  service: string | null;
  createdAt: Date | null;
}

/**
 * Another SMS on a number whose code already arrived. Upstreams differ: SMS-Activate keeps the same
 * activation (setStatus 3, free), DaisySMS sells an extra activation of the same number (a new
 * order, charged). The lifecycle keeps either as a child verification of the one that bought the
 * number (src/verifications/another-code.ts).
 */
export interface AnotherCodeOrder {
  /** The order the new SMS belongs to: the same id, or a new one where the upstream sells a new order. */
  providerOrderId: string;
  phoneNumber: string;
  /** The upstream's end for the new wait, when it states one. */
  endsAt: Date | null;
  /** What the upstream charges for it (minor units): 0 where it is free, null when it does not say. */
  costMinor: number | null;
}

/**
 * How an upstream sells another code, known before it is asked (the lifecycle places a hold first
 * when it is charged). Absent on a provider with `anotherCode`: free, on the same order.
 */
export interface AnotherCodeTerms {
  /** Charged like a purchase (DaisySMS extra activation): the child holds its parent's price. */
  charged: boolean;
  /**
   * Each code is a new upstream order with its own id (TextVerified reuse, DaisySMS extra
   * activation): the child owns it, cancels and finishes it, and a lost answer leaves no id to wait on.
   */
  newOrder: boolean;
}

export interface Provider {
  readonly name: ProviderName;
  /** Area codes, carriers, voice this upstream honours; absent = none (PLAIN_CAPABILITIES). */
  readonly capabilities?: ProviderCapabilities;
  /** Area codes the upstream offers (US: `[{areaCode, state}]`), when it lists them. */
  areaCodes?(): Promise<{ areaCode: string; region: string | null }[]>;
  /** The protocol spoken; absent on test doubles, which are then taken for their name's kind. */
  readonly kind?: ProviderKind;
  catalogue(): Promise<CatalogueEntry[]>;
  /** Throws ProviderError (definite or ambiguous) on failure. */
  buy(request: PurchaseRequest): Promise<ProviderOrder>;
  /** Resolve an ambiguous purchase without buying again. */
  lookup(request: LookupRequest): Promise<LookupResult>;
  check(order: OrderRef): Promise<OrderCheck>;
  /** Batched check when the upstream has a list call; absent orders are missing from the map. */
  checkMany?(orders: OrderRef[]): Promise<Map<string, OrderCheck>>;
  cancel(providerOrderId: string): Promise<CancelOutcome>;
  /**
   * Tell the upstream we are done with a delivered order (SMS-Activate setStatus 6): `finished`, or
   * `gone` when the upstream had already closed it (finished, cancelled or forgotten).
   */
  complete?(providerOrderId: string): Promise<'finished' | 'gone'>;
  /** Report a failed or undelivered order to recoup its cost. */
  report?(providerOrderId: string): Promise<void>;
  /**
   * What became of a reported order: `refunded` once the upstream gave us its cost back, `pending`
   * while it has not decided, `declined` when it kept it. Upstreams decide after the report, so the
   * lifecycle asks again (settlement) and refunds the customer only on `refunded`.
   */
  reportOutcome?(providerOrderId: string): Promise<'refunded' | 'pending' | 'declined'>;
  /**
   * Ask for another SMS on the number of a delivered order, while the upstream allows it. A refusal
   * (window closed, not delivered) is a definite `rejected`.
   */
  anotherCode?(order: OrderRef): Promise<AnotherCodeOrder>;
  /** How anotherCode is sold; absent: free, on the same order. */
  readonly anotherCodeTerms?: AnotherCodeTerms;
  /** Orders the upstream considers active: used to find orphans. */
  activeOrders?(): Promise<ActiveOrder[]>;
  /** The operator's float upstream; null when the upstream does not state it. */
  balance(): Promise<{ amountMinor: number | null; currency: string }>;
  /** Signed webhooks from this upstream, when it sends them and a secret is configured. */
  readonly webhooks?: ProviderWebhooks;
}

// ---- Webhooks ------------------------------------------------------------------------------------

/** An incoming webhook request as the HTTP layer received it. */
export interface WebhookRequest {
  /** The exact bytes received: signatures are computed over them, never over re-serialised JSON. */
  rawBody: Buffer;
  /** Header names in lower case. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** An SMS announced by a webhook, in the same terms the poller uses. */
export interface WebhookSms {
  /** The upstream order it was assigned to, when the event says. */
  providerOrderId: string | null;
  /** The number it was sent to (E.164 digits), when the event says. */
  phoneNumber: string | null;
  /** Same providerMessageId as the poller gives the same SMS: a message is stored once. */
  message: ProviderMessage;
}

/** A verified webhook event, free of the vendor's envelope. */
export interface WebhookEvent {
  /** The upstream's id of this event. */
  eventId: string;
  /** The upstream's key for recognising a repeated delivery, when it sends one besides the id. */
  dedupeKey: string | null;
  occurredAt: Date;
  /** The SMS it announces; null for events we acknowledge and do not act on. */
  sms: WebhookSms | null;
}

/** The optional webhook capability: checking and reading what an upstream sends us. */
export interface ProviderWebhooks {
  /** True when the request carries a valid signature over its raw body (checked in constant time). */
  verify(request: WebhookRequest): boolean;
  /** Reads a verified body; throws MalformedWebhookError when it is not the documented shape. */
  parse(rawBody: Buffer): WebhookEvent;
}

export class MalformedWebhookError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedWebhookError';
  }
}
