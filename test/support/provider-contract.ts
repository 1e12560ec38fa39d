/**
 * The subjects of the provider contract suite (test/providers/contract.test.ts): every adapter,
 * pointed at its fake upstream (or, for the sandbox, at itself), behind one driver interface the
 * scenarios talk to. A new seller costs an adapter, a fake (test/support/fake-*.ts, built from
 * fake-upstream.ts) and a subject here; the scenarios stay as they are.
 *
 * Hooks a subject cannot offer are left out, and the scenarios that need them are skipped for it,
 * with the reason printed: the sandbox, for one, has no wire to script failures on.
 */
import type { Clock } from '../../src/clock.ts';
import type { Provider, ProviderName } from '../../src/providers/provider.ts';
import { SandboxProvider, sandboxCountries, sandboxOrderId, sandboxServices } from '../../src/providers/sandbox.ts';
import { SmsActivateProvider, type SmsActivateOptions } from '../../src/providers/sms-activate/adapter.ts';
import { SELLER_PROFILES, type SellerName } from '../../src/providers/sms-activate/sellers.ts';
import { TextVerifiedProvider } from '../../src/providers/textverified/adapter.ts';
import { startFakeSmsActivate, type FakeSmsActivateOptions, type SmsActivateDialect } from './fake-sms-activate.ts';
import { signWebhook, startFakeTextVerified, type FakeTextVerifiedOptions } from './fake-textverified.ts';
import type { ScriptedFailure } from './fake-upstream.ts';
import type { TestOffer } from './provider-catalogue.ts';

/** The scenario's clock: subjects read it, and the sandbox moves it to deliver. */
export type ContractClock = Clock & { set(at: Date): void };

/** Kinds of upstream call, the same words for every subject. */
export type ContractCall = 'buy' | 'status' | 'cancel' | 'finish' | 'list' | 'prices' | 'other';

export type UpstreamOrderView = 'waiting' | 'received' | 'cancelled' | 'expired' | 'unknown';

export interface ContractUpstream {
  provider: Provider;
  close(): Promise<void>;
  /** Orders the upstream has sold. */
  sold(): number;
  /** Every call the upstream received so far, in order. */
  calls(): ContractCall[];
  /**
   * Makes an SMS arrive upstream for a sold order bought at `since`; returns the code and text the
   * customer will be shown.
   */
  deliver(orderId: string, since: Date, sms: { code: string; text: string }): { code: string; text: string };
  /** The upstream's own view of an order. */
  orderState(orderId: string): UpstreamOrderView;
  /** The number a sold order carries, as E.164 digits. */
  orderPhone(orderId: string): string;
  /** The order sold most recently. */
  lastSold(): string;
  /** Back to the upstream's normal behaviour between scenarios. */
  reset(): void;
  /** The next purchase's answer is lost after the upstream sold the number; returns the service to buy. */
  loseNextAnswer(): string;
  /** The next purchase is refused before anything happens; returns the service to buy and the wait asked. */
  refuseNextPurchase(): { service: string; retryAfter: string | null };

  /** The price cap (major units) the last purchase request carried upstream. */
  lastPurchaseCap?(): number;
  failNext?(call: ContractCall, failure: ScriptedFailure, times?: number): void;
  /** The upstream forgets an order: from now on it answers as for an order it never had. */
  forget?(orderId: string): void;
  /** The upstream refuses cancels for this long after a sale. */
  setEarlyCancel?(seconds: number): void;
  /** How long the upstream keeps a number of the main service from now on. */
  setLifetime?(seconds: number): void;
  setStock?(service: string, count: number): void;
  /** An order sold outside our purchase path: an orphan no verification knows. */
  sellElsewhere?(service: string, createdAt: Date): string;
  /** Leaves an order out of the upstream's list of active orders (it keeps answering about it). */
  hideFromList?(orderId: string): void;
  /** Makes a lookup for this purchase (our verification id, its service, when it was sent) unable to decide. */
  obscureLookups?(clientRef: string, service: string, requestedAt: Date): void;
  /** A well-formed refusal of a purchase in a word the adapter does not know. */
  unknownRefusal?: ScriptedFailure;
  /** The seller states, in what the adapter reads, an account in another currency; returns the way back. */
  revealForeignCurrency?(): Promise<() => Promise<void>>;
  /** The signed webhook the upstream sends for the SMS it delivered last. */
  webhookForLastSms?(): { rawBody: Buffer; headers: Record<string, string> };
}

export interface ContractSubject {
  label: string;
  providerName: ProviderName;
  env: Record<string, string>;
  /**
   * Our service names: main and alt are in stock, soldOut has none, overCap costs more upstream
   * than its catalogue cap, quiet never delivers unless a scenario delivers.
   */
  services: { main: string; alt: string; soldOut: string; quiet: string; overCap?: string };
  /** The catalogue rows the scenarios buy from (the sandbox seeds its own). */
  offers: TestOffer[];
  /** What the upstream's price list states, as catalogue() reads it. */
  catalogue: { service: string; country: string; costMinor: number }[];
  /** Seconds the upstream keeps a number of the main service (null: it states no end). */
  lifetimeSeconds: number | null;
  /** Recovery of a purchase that never reached the upstream: bought now (same key), absent, or undecidable. */
  unsoldRecovery: 'bought' | 'absent' | 'undecided';
  /** Recovery finds an order whose purchase answer was lost. */
  findsLostOrders: boolean;
  /** One list call polls many waiting orders. */
  batchesPolls: boolean;
  /** The upstream's cancel knows an SMS arrived (the sandbox's does not). */
  cancelSeesDelivery: boolean;
  /** The wait the adapter asks for when the upstream refuses an early cancel of `seconds`. */
  earlyCancelRetryAfter(seconds: number): number;
  start(clock: ContractClock): Promise<ContractUpstream>;
}

const ADAPTER_TIMEOUT_MS = 500;

/** The fakes' services, as the scenarios use them: main and alt in stock, google sold out, discord dearer than its cap. */
const FAKE_SERVICES: ContractSubject['services'] = { main: 'whatsapp', alt: 'telegram', soldOut: 'google', quiet: 'whatsapp', overCap: 'discord' };
/** What customers pay, the same in every subject; what we pay at most (the cap) is the subject's. */
const CUSTOMER_PRICES = { whatsapp: 200, telegram: 120, google: 80, discord: 150 };
type FakeService = keyof typeof CUSTOMER_PRICES;

function usOffers(caps: Record<FakeService, number>): TestOffer[] {
  return (Object.keys(CUSTOMER_PRICES) as FakeService[]).map((service) => ({ service, priceMinor: CUSTOMER_PRICES[service], costMinor: caps[service] }));
}

function usCatalogue(costs: Record<FakeService, number>): ContractSubject['catalogue'] {
  return (Object.keys(costs) as FakeService[]).map((service) => ({ service, country: 'US', costMinor: costs[service] }));
}
/** Rate limits are waited out in milliseconds here; the waits' length is not what is tested. */
const QUICK_BACKOFF = { retries: 4, initialDelayMs: 1, maxDelayMs: 5 };

// ---- TextVerified ---------------------------------------------------------------------------------

const TV_WEBHOOK_SECRET = 'whsec_contract_secret';

export const textVerifiedSubject: ContractSubject = {
  label: 'textverified',
  providerName: 'textverified',
  env: { PROVIDER: 'textverified' },
  services: FAKE_SERVICES,
  // Fake prices: whatsapp 1.25, telegram 0.75, google 0.50, discord 2.00.
  offers: usOffers({ whatsapp: 150, telegram: 100, google: 60, discord: 100 }),
  catalogue: usCatalogue({ whatsapp: 125, telegram: 75, google: 50, discord: 200 }),
  lifetimeSeconds: 300,
  // The retry with the same Idempotency-Key is itself a first purchase if the first never arrived.
  unsoldRecovery: 'bought',
  findsLostOrders: true,
  batchesPolls: false,
  cancelSeesDelivery: true,
  earlyCancelRetryAfter: () => 60, // TextVerified says no wait: the adapter's configured guess
  async start(clock) {
    const options: FakeTextVerifiedOptions = {
      clock,
      maxUnfinished: 10_000,
      balance: 10_000,
      verificationLifetimeSeconds: 300,
      cancelableAfterSeconds: 0,
      webhookSecret: TV_WEBHOOK_SECRET,
      prices: { whatsapp: 1.25, telegram: 0.75, google: 0.5, discord: 2 },
    };
    const fake = await startFakeTextVerified(options);
    fake.controls.setStock('google', 0);
    const provider = new TextVerifiedProvider({
      baseUrl: fake.url,
      apiUsername: 'operator@example.com',
      apiKey: 'tv-test-key',
      clock,
      requestsPerSecond: 0,
      timeoutMs: ADAPTER_TIMEOUT_MS,
      catalogueTtlSeconds: 1,
      rateLimitBackoff: QUICK_BACKOFF,
      webhookSecret: TV_WEBHOOK_SECRET,
    });
    const kinds: Record<string, ContractCall> = { create: 'buy', details: 'status', sms: 'status', cancel: 'cancel', list: 'list', pricing: 'prices', services: 'prices' };
    const routes: Partial<Record<ContractCall, 'create' | 'details' | 'cancel' | 'list' | 'pricing'>> = {
      buy: 'create',
      status: 'details',
      cancel: 'cancel',
      list: 'list',
      prices: 'pricing',
    };
    const routeOf = (path: string, method: string) => {
      const rest = path.replace('/api/pub/v2', '');
      if (rest === '/verifications') return method === 'POST' ? 'create' : 'list';
      if (rest === '/sms') return 'sms';
      if (rest === '/pricing/verifications') return 'pricing';
      if (rest === '/services') return 'services';
      if (/\/cancel$/.test(rest)) return 'cancel';
      if (/^\/verifications\/[^/]+$/.test(rest)) return 'details';
      return 'other';
    };
    const order = (id: string) => {
      const v = fake.state.verifications.get(id);
      if (!v) throw new Error(`fake textverified has no verification ${id}`);
      return v;
    };
    let lastSms: Parameters<typeof fake.controls.smsWebhookData>[0] | undefined;
    return {
      provider,
      close: fake.close,
      sold: () => fake.state.purchases,
      calls: () => fake.state.requests.map((r) => kinds[routeOf(r.path, r.method)] ?? 'other'),
      deliver(orderId, _since, sms) {
        lastSms = fake.controls.deliverSms(orderId, sms);
        return sms;
      },
      orderState(orderId) {
        const v = fake.state.verifications.get(orderId);
        if (!v) return 'unknown';
        // Reading the state through the API moves a pending order past its end to timed out.
        const s = v.state === 'verificationPending' && clock.now() >= v.endsAt ? 'verificationTimedOut' : v.state;
        const views: Record<string, UpstreamOrderView> = {
          verificationPending: 'waiting',
          verificationCompleted: 'received',
          verificationCanceled: 'cancelled',
          verificationTimedOut: 'expired',
        };
        return views[s] ?? 'unknown';
      },
      orderPhone: (orderId) => `1${order(orderId).number}`,
      lastSold: () => [...fake.state.verifications.keys()].at(-1)!,
      reset() {
        fake.controls.clearFailures();
        options.cancelableAfterSeconds = 0;
        options.verificationLifetimeSeconds = 300;
        fake.controls.setStock('whatsapp', 1_000_000);
        fake.controls.setStock('telegram', 1_000_000);
      },
      loseNextAnswer() {
        fake.controls.failNext('create', { type: 'dropAfterEffect' });
        return 'whatsapp';
      },
      refuseNextPurchase() {
        fake.controls.failNext('create', { type: 'rateLimit', retryAfter: '7' });
        return { service: 'whatsapp', retryAfter: '7' };
      },
      lastPurchaseCap() {
        const create = fake.state.requests.filter((r) => r.method === 'POST' && routeOf(r.path, r.method) === 'create').at(-1);
        return Number((JSON.parse(create?.body ?? '{}') as { maxPrice?: number }).maxPrice);
      },
      failNext(call, failure, times) {
        const route = routes[call];
        if (!route) throw new Error(`textverified subject cannot script ${call}`);
        fake.controls.failNext(route, failure, times);
      },
      forget: (orderId) => fake.controls.forget(orderId),
      setEarlyCancel: (seconds) => void (options.cancelableAfterSeconds = seconds),
      setLifetime: (seconds) => void (options.verificationLifetimeSeconds = seconds),
      setStock: (service, count) => fake.controls.setStock(service, count),
      sellElsewhere: (service, createdAt) => fake.controls.sellElsewhere({ serviceName: service, createdAt }).id,
      // The create with this key is "still running" upstream: 409 IdempotencyConflict.
      obscureLookups: (clientRef) => fake.controls.setIdempotencyState(clientRef, 'running'),
      unknownRefusal: { type: 'status', status: 400, body: JSON.stringify({ errorCode: 'SomethingNew', errorDescription: 'A refusal this client has never seen.' }) },
      webhookForLastSms() {
        if (!lastSms) throw new Error('no SMS delivered yet');
        const rawBody = Buffer.from(
          JSON.stringify({
            id: `evt_${lastSms.id}`,
            event: 'v2.sms.received',
            occurredAt: clock.now().toISOString(),
            attempt: 1,
            idempotencyKey: `idem_${lastSms.id}`,
            data: fake.controls.smsWebhookData(lastSms),
          }),
        );
        return { rawBody, headers: { 'x-webhook-signature': signWebhook(rawBody, TV_WEBHOOK_SECRET) } };
      },
    };
  },
};

// ---- The SMS-Activate protocol, per seller dialect -------------------------------------------------

interface SmsActivateSubjectSpec {
  label: string;
  dialect: SmsActivateDialect;
  seller: SellerName;
  adapter?: Partial<SmsActivateOptions>;
  fake?: Partial<FakeSmsActivateOptions>;
  lifetimeSeconds: number | null;
  unsoldRecovery: ContractSubject['unsoldRecovery'];
  findsLostOrders: boolean;
  batchesPolls: boolean;
  earlyCancelRetryAfter(seconds: number): number;
  unknownRefusal: ScriptedFailure;
  /** How the seller's list can hide an order: capped (masked) or without activation times. */
  obscuredBy: 'capped list' | 'undated entries' | null;
  /** The seller states its account currency on active-list entries (HeroSMS). */
  listsCurrency: boolean;
}

function smsActivateSubject(spec: SmsActivateSubjectSpec): ContractSubject {
  const daisy = spec.dialect === 'daisy';
  return {
    label: spec.label,
    providerName: 'sms-activate',
    env: { PROVIDER: 'sms-activate' },
    services: FAKE_SERVICES,
    // Fake prices: US (187) wa 0.50, tg 0.35, go 0.20 with no stock, ds 0.80; GB (16) wa 0.90.
    offers: [
      ...usOffers({ whatsapp: 60, telegram: 40, google: 30, discord: 50 }),
      ...(daisy ? [] : [{ service: 'whatsapp', country: 'GB', priceMinor: 150, costMinor: 100 }]),
    ],
    catalogue: [
      ...usCatalogue({ whatsapp: 50, telegram: 35, google: 20, discord: 80 }),
      ...(daisy ? [] : [{ service: 'whatsapp', country: 'GB', costMinor: 90 }]),
    ],
    lifetimeSeconds: spec.lifetimeSeconds,
    unsoldRecovery: spec.unsoldRecovery,
    findsLostOrders: spec.findsLostOrders,
    batchesPolls: spec.batchesPolls,
    cancelSeesDelivery: true,
    earlyCancelRetryAfter: spec.earlyCancelRetryAfter,
    async start(clock) {
      const options: FakeSmsActivateOptions = {
        clock,
        dialect: spec.dialect,
        balance: 10_000,
        earlyCancelSeconds: 0,
        prices: {
          '187': {
            wa: { cost: 0.5, count: 100_000, ttl: 300 },
            tg: { cost: 0.35, count: 100_000, ttl: 900 },
            go: { cost: 0.2, count: 0, ttl: 300 },
            ds: { cost: 0.8, count: 100_000, ttl: 600 },
          },
          ...(daisy ? {} : { '16': { wa: { cost: 0.9, count: 100 } } }),
        },
        ...spec.fake,
      };
      const fake = await startFakeSmsActivate(options);
      const provider = new SmsActivateProvider({
        ...SELLER_PROFILES[spec.seller].options,
        baseUrl: fake.url,
        apiKey: 'sa-test-key',
        clock,
        requestsPerSecond: 0,
        timeoutMs: ADAPTER_TIMEOUT_MS,
        catalogueTtlSeconds: 1,
        rateLimitBackoff: QUICK_BACKOFF,
        ...spec.adapter,
      });
      const kinds: Record<string, ContractCall> = {
        getNumber: 'buy',
        getNumberV2: 'buy',
        getStatus: 'status',
        getFullSms: 'status',
        setStatus: 'cancel',
        getActiveActivations: 'list',
        getPrices: 'prices',
        getPricesVerification: 'prices',
      };
      const buyAction = spec.adapter?.purchaseAction ?? 'getNumber';
      const actions: Record<ContractCall, string> = {
        buy: buyAction,
        status: 'getStatus',
        cancel: 'setStatus',
        finish: 'setStatus',
        list: 'getActiveActivations',
        prices: daisy ? 'getPricesVerification' : 'getPrices',
        other: 'getBalance',
      };
      const activation = (id: string) => {
        const a = fake.state.activations.get(id);
        if (!a) throw new Error(`fake seller has no activation ${id}`);
        return a;
      };
      return {
        provider,
        close: fake.close,
        sold: () => fake.state.purchases,
        calls: () =>
          fake.state.requests.map((r) => {
            const action = r.query.get('action') ?? '';
            // setStatus 6 (HeroSMS also finishActivation) tells the seller a delivered order is finished.
            if ((action === 'setStatus' && r.query.get('status') === '6') || action === 'finishActivation') return 'finish';
            return kinds[action] ?? 'other';
          }),
        deliver(orderId, _since, sms) {
          fake.controls.deliverSms(orderId, sms);
          // Sellers without getFullSms report the code alone; it is all the customer gets.
          const fullText = spec.dialect === 'classic';
          return { code: sms.code, text: fullText ? sms.text : sms.code };
        },
        orderState(orderId) {
          const a = fake.state.activations.get(orderId);
          if (!a) return 'unknown';
          if (a.status === 'waiting' && clock.now().getTime() >= a.createdAt.getTime() + a.lifetimeMs) return 'expired';
          const views: Record<string, UpstreamOrderView> = { waiting: 'waiting', received: 'received', retry: 'received', finished: 'received', cancelled: 'cancelled' };
          return views[a.status] ?? 'unknown';
        },
        orderPhone: (orderId) => activation(orderId).phone,
        lastSold: () => [...fake.state.activations.keys()].at(-1)!,
        reset() {
          fake.controls.clearFailures();
          options.earlyCancelSeconds = 0;
          delete options.activeListCap;
          fake.controls.setCount('187', 'wa', 100_000);
          fake.controls.setCount('187', 'tg', 100_000);
        },
        loseNextAnswer() {
          fake.controls.failNext(buyAction, { type: 'dropAfterEffect' });
          return 'whatsapp';
        },
        refuseNextPurchase() {
          fake.controls.failNext(buyAction, { type: 'rateLimit', retryAfter: '7' });
          return { service: 'whatsapp', retryAfter: '7' };
        },
        lastPurchaseCap() {
          const request = fake.state.requests.filter((r) => kinds[r.query.get('action') ?? ''] === 'buy').at(-1);
          return Number(request?.query.get('maxPrice') ?? request?.query.get('max_price'));
        },
        failNext: (call, failure, times) => fake.controls.failNext(actions[call] as never, failure, times),
        forget: (orderId) => fake.controls.forget(orderId),
        setEarlyCancel: (seconds) => void (options.earlyCancelSeconds = seconds),
        setStock: (service, count) => fake.controls.setCount('187', service === 'whatsapp' ? 'wa' : service === 'telegram' ? 'tg' : 'go', count),
        ...(daisy
          ? {}
          : {
              sellElsewhere: (service: string, createdAt: Date) =>
                fake.controls.createActivation({ service: service === 'telegram' ? 'tg' : 'wa', country: '187', createdAt }).id,
              hideFromList: (orderId: string) => void (activation(orderId).status = 'finished'),
              obscureLookups: (_clientRef: string, _service: string, requestedAt: Date) => {
                if (spec.obscuredBy === 'capped list') {
                  // The seller shows ten activations, whatever start/limit say, and has more: ours could be
                  // any of those out of sight.
                  options.activeListCap = 10;
                  for (let i = 0; i < 10; i += 1) fake.controls.createActivation({ service: 'tg', country: '187', createdAt: requestedAt });
                } else {
                  // An activation of the same service whose time the list does not show: lookup cannot tell.
                  fake.controls.createActivation({ service: 'wa', country: '187', createdAt: requestedAt, datedOnList: false });
                }
              },
            }),
        ...(spec.listsCurrency
          ? {
              async revealForeignCurrency() {
                options.currencyCode = 978;
                const seen = fake.controls.createActivation({ service: 'tg', country: '187' });
                await provider.activeOrders(); // every entry states the account's currency
                return async () => {
                  options.currencyCode = 840;
                  await provider.activeOrders();
                  fake.controls.forget(seen.id);
                };
              },
            }
          : {}),
        unknownRefusal: spec.unknownRefusal,
      };
    },
  };
}

export const smsActivateSubjects: ContractSubject[] = [
  smsActivateSubject({
    label: 'sms-activate (classic)',
    dialect: 'classic',
    seller: 'sms-activate',
    lifetimeSeconds: 1200,
    unsoldRecovery: 'absent',
    findsLostOrders: true,
    batchesPolls: true,
    earlyCancelRetryAfter: () => 120,
    unknownRefusal: { type: 'status', status: 200, body: 'ORDER_REFUSED_FOR_NEW_REASON', contentType: 'text/html' },
    obscuredBy: 'capped list',
    listsCurrency: false,
  }),
  smsActivateSubject({
    label: 'sms-activate (HeroSMS)',
    dialect: 'hero',
    seller: 'herosms',
    lifetimeSeconds: 1200,
    unsoldRecovery: 'absent',
    findsLostOrders: true,
    batchesPolls: true,
    // HeroSMS names the minimum age in the refusal.
    earlyCancelRetryAfter: (seconds) => seconds,
    unknownRefusal: { type: 'status', status: 403, body: JSON.stringify({ title: 'ORDER_REFUSED_FOR_NEW_REASON', details: 'new' }) },
    obscuredBy: 'undated entries',
    listsCurrency: true,
  }),
  smsActivateSubject({
    label: 'sms-activate (DaisySMS)',
    dialect: 'daisy',
    seller: 'daisysms',
    // The main service's stated lifetime (ttl 300 s), read from getPricesVerification.
    lifetimeSeconds: 300,
    // No active-activations list: a lost or unclear purchase cannot be found or proven absent.
    unsoldRecovery: 'undecided',
    findsLostOrders: false,
    batchesPolls: false,
    earlyCancelRetryAfter: () => 120,
    unknownRefusal: { type: 'status', status: 200, body: 'ORDER_REFUSED_FOR_NEW_REASON', contentType: 'text/html' },
    obscuredBy: null,
    listsCurrency: false,
  }),
];

// ---- The sandbox ----------------------------------------------------------------------------------

const SANDBOX_DELAY_MS = 5000;

export const sandboxSubject: ContractSubject = {
  label: 'sandbox',
  providerName: 'sandbox',
  env: { PROVIDER: 'sandbox', SANDBOX_DELAY_MS: String(SANDBOX_DELAY_MS), SANDBOX_FAILURE_RATE: '0' },
  services: { main: 'test_delayed', alt: 'test_success', soldOut: 'test_no_numbers', quiet: 'test_timeout' },
  // The sandbox's catalogue is seeded at start-up: US offers at its list prices.
  offers: sandboxServices.map((s) => ({ service: s.service, priceMinor: s.priceMinor, costMinor: Math.max(1, Math.floor(s.priceMinor / 2)) })),
  catalogue: sandboxCountries.flatMap((country) =>
    sandboxServices.map((s) => ({ service: s.service, country, costMinor: Math.max(1, Math.floor(s.priceMinor / 2)) })),
  ),
  lifetimeSeconds: null,
  unsoldRecovery: 'absent',
  findsLostOrders: true,
  batchesPolls: false,
  cancelSeesDelivery: false,
  earlyCancelRetryAfter: () => 0,
  async start(clock) {
    const provider = new SandboxProvider({ clock, delayMs: SANDBOX_DELAY_MS, failureRate: 0, ttlSeconds: 600 });
    let last: string | undefined;
    const buy = provider.buy.bind(provider);
    provider.buy = (request) => {
      // Known before the answer: test_ambiguous sells and then loses the answer.
      last = sandboxOrderId(request.clientRef, request.service);
      return buy(request);
    };
    return {
      provider,
      close: async () => {},
      sold: () => [...provider.purchases.values()].reduce((a, b) => a + b, 0),
      calls: () => [],
      deliver(orderId, since) {
        // The sandbox delivers by the clock: move it to the delivery time.
        const at = provider.deliveryAt(orderId, since);
        if (!at) throw new Error(`sandbox order ${orderId} never delivers`);
        if (clock.now() < at) clock.set(at);
        const message = provider.messageFor(orderId, at);
        return { code: message.code ?? '', text: message.text };
      },
      orderState: () => 'unknown',
      orderPhone: () => '',
      lastSold: () => last ?? '',
      reset() {},
      loseNextAnswer: () => 'test_ambiguous',
      refuseNextPurchase: () => ({ service: 'test_provider_error', retryAfter: null }),
    };
  },
};

export const contractSubjects: ContractSubject[] = [sandboxSubject, textVerifiedSubject, ...smsActivateSubjects];
