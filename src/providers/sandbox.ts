import { createHash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import {
  ProviderError,
  type AnotherCodeOrder,
  type CancelOutcome,
  type CatalogueEntry,
  type LookupRequest,
  type LookupResult,
  type NumberOptions,
  type ProviderCapabilities,
  type OrderCheck,
  type OrderRef,
  type Provider,
  type ProviderMessage,
  type ProviderOrder,
  type PurchaseRequest,
} from './provider.ts';

/**
 * The built-in simulated upstream. It keeps no state of its own: an order is derived from our
 * client reference and its delivery time from the order itself, so any number of processes (API
 * and workers) agree about every sandbox order without sharing memory.
 *
 * Scenario services behave deterministically (docs/providers.md); ordinary services deliver after a
 * pseudo-random delay and a configurable share never deliver.
 */
export interface SandboxOptions {
  clock: Clock;
  delayMs: number;
  failureRate: number;
  ttlSeconds: number;
  /** What the sandbox adds for each option (default SANDBOX_SURCHARGES; PROVIDER_SANDBOX_*_SURCHARGE_MINOR). */
  surcharges?: ProviderCapabilities['surcharge'];
}

export const sandboxServices: { service: string; name: string; priceMinor: number }[] = [
  { service: 'test_success', name: 'Test: delivers at once', priceMinor: 50 },
  { service: 'test_delayed', name: 'Test: delivers after a delay', priceMinor: 50 },
  { service: 'test_timeout', name: 'Test: never delivers', priceMinor: 50 },
  { service: 'test_no_numbers', name: 'Test: no numbers', priceMinor: 50 },
  { service: 'test_provider_error', name: 'Test: upstream error', priceMinor: 50 },
  { service: 'test_ambiguous', name: 'Test: answer lost', priceMinor: 50 },
  { service: 'test_late', name: 'Test: SMS after the deadline', priceMinor: 50 },
  { service: 'test_mismatch', name: 'Test: a number other than the one asked for', priceMinor: 50 },
  { service: 'test_alternate', name: 'Test: every second purchase has no number, none delivers', priceMinor: 50 },
  { service: 'test_voice_recording', name: 'Test: a call handed over as a recording, no code (as TextVerified)', priceMinor: 50 },
  { service: 'whatsapp', name: 'WhatsApp', priceMinor: 120 },
  { service: 'telegram', name: 'Telegram', priceMinor: 110 },
  { service: 'google', name: 'Google', priceMinor: 90 },
  { service: 'facebook', name: 'Facebook', priceMinor: 80 },
  { service: 'instagram', name: 'Instagram', priceMinor: 80 },
  { service: 'tiktok', name: 'TikTok', priceMinor: 70 },
  { service: 'discord', name: 'Discord', priceMinor: 60 },
  { service: 'microsoft', name: 'Microsoft', priceMinor: 60 },
  { service: 'amazon', name: 'Amazon', priceMinor: 75 },
  { service: 'uber', name: 'Uber', priceMinor: 65 },
];

export const sandboxCountries = ['US', 'GB', 'DE', 'IN'];

/**
 * The sandbox honours every option for US numbers, with small surcharges so that prices with options
 * can be tried out. Area code 999 never has numbers (a definite `no_numbers`); `test_mismatch`
 * assigns a number from another area code and carrier than asked (the purchase then fails, not
 * charged); a voice order's code arrives as the transcript of a call, except for
 * `test_voice_recording`, whose call comes as TextVerified hands one over: a recording, no code.
 */
/** The sandbox's surcharges when PROVIDER_SANDBOX_*_SURCHARGE_MINOR are not set. */
export const SANDBOX_SURCHARGES: ProviderCapabilities['surcharge'] = { areaCodeMinor: 10, carrierMinor: 10, voiceMinor: 20 };

export const SANDBOX_CAPABILITIES: ProviderCapabilities = {
  areaCodes: true,
  carriers: true,
  voice: true,
  maxChoices: 10,
  carrierNames: ['att', 'tmo', 'vz'],
  areaCodeCountries: ['US'],
  reportsCarrier: true,
  surcharge: SANDBOX_SURCHARGES,
};
export const SANDBOX_EMPTY_AREA_CODE = '999';

/** Area codes the sandbox lists (a few real US ones, and the one that never has numbers). */
export const sandboxAreaCodes: { areaCode: string; region: string | null }[] = [
  { areaCode: '212', region: 'NY' },
  { areaCode: '305', region: 'FL' },
  { areaCode: '415', region: 'CA' },
  { areaCode: '512', region: 'TX' },
  { areaCode: '617', region: 'MA' },
  { areaCode: SANDBOX_EMPTY_AREA_CODE, region: null },
];

const ORDER_PREFIX = 'sbx-';

function digest(...parts: string[]): Buffer {
  return createHash('sha256').update(parts.join('|')).digest();
}

/** A number in the fictional 555-01xx range, stable per order; in the first area code asked for, if any. */
function phoneFor(clientRef: string, areaCode?: string): string {
  const n = digest('phone', clientRef).readUInt32BE(0);
  return `1${areaCode ?? String(200 + (n % 800))}555${String(100 + (n % 9900)).padStart(4, '0')}`;
}

/** An area code other than every one asked for (for the mismatch scenario). */
function otherAreaCode(asked: string[]): string {
  for (let code = 201; ; code += 1) if (!asked.includes(String(code))) return String(code);
}

const VOICE_MARK = '~voice';

function codeFor(orderId: string): string {
  return String(digest('code', orderId).readUInt32BE(0) % 1_000_000).padStart(6, '0');
}

export function sandboxOrderId(clientRef: string, service: string, voice = false): string {
  return `${ORDER_PREFIX}${service}${voice ? VOICE_MARK : ''}:${clientRef}`;
}

function parseOrderId(providerOrderId: string): { service: string; clientRef: string; voice: boolean } | undefined {
  if (!providerOrderId.startsWith(ORDER_PREFIX)) return undefined;
  const rest = providerOrderId.slice(ORDER_PREFIX.length);
  const colon = rest.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const head = rest.slice(0, colon);
  const voice = head.endsWith(VOICE_MARK);
  return { service: voice ? head.slice(0, -VOICE_MARK.length) : head, clientRef: rest.slice(colon + 1), voice };
}

export class SandboxProvider implements Provider {
  readonly name = 'sandbox' as const;
  readonly capabilities: ProviderCapabilities;
  readonly kind = 'sandbox' as const;
  /** Purchases seen by this process (for tests: "one upstream purchase"). */
  readonly purchases = new Map<string, number>();
  /** Purchases of test_alternate seen by this process: odd ones have no number. */
  private alternate = 0;

  constructor(private readonly options: SandboxOptions) {
    this.capabilities = options.surcharges ? { ...SANDBOX_CAPABILITIES, surcharge: options.surcharges } : SANDBOX_CAPABILITIES;
  }

  async catalogue(): Promise<CatalogueEntry[]> {
    return sandboxCountries.flatMap((country) =>
      sandboxServices.map((s) => ({ service: s.service, country, costMinor: Math.max(1, Math.floor(s.priceMinor / 2)), available: 1000, ...(country === 'US' ? { voice: true } : {}) })),
    );
  }

  async areaCodes(): Promise<{ areaCode: string; region: string | null }[]> {
    return sandboxAreaCodes;
  }

  async buy(request: PurchaseRequest): Promise<ProviderOrder> {
    if (request.options?.areaCodes?.length && request.options.areaCodes.every((a) => a === SANDBOX_EMPTY_AREA_CODE)) {
      throw new ProviderError('definite', 'no_numbers', `sandbox: no numbers in area code ${SANDBOX_EMPTY_AREA_CODE}`);
    }
    switch (request.service) {
      case 'test_no_numbers':
        throw new ProviderError('definite', 'no_numbers', 'sandbox: no numbers for test_no_numbers');
      case 'test_provider_error':
        throw new ProviderError('definite', 'unavailable', 'sandbox: upstream answered 503', { status: 503 });
      case 'test_alternate':
        if (this.alternate++ % 2 === 1) throw new ProviderError('definite', 'no_numbers', 'sandbox: every second test_alternate has no number');
    }
    this.purchases.set(request.clientRef, (this.purchases.get(request.clientRef) ?? 0) + 1);
    if (request.service === 'test_ambiguous') {
      throw new ProviderError('ambiguous', 'connection_lost', 'sandbox: the order was created but the answer was lost');
    }
    return this.orderFor(request.clientRef, request.service, request.options);
  }

  async lookup(request: LookupRequest): Promise<LookupResult> {
    // Scenarios that fail before reaching the upstream never create an order; every other sandbox
    // order is derived from its client reference, so any process can find it.
    if (request.service === 'test_no_numbers' || request.service === 'test_provider_error') return { status: 'absent' };
    return { status: 'found', order: this.orderFor(request.clientRef, request.service, request.options) };
  }

  private orderFor(clientRef: string, service: string, options?: NumberOptions): ProviderOrder {
    const asked = (options?.areaCodes ?? []).filter((a) => a !== SANDBOX_EMPTY_AREA_CODE);
    const carriers = options?.carriers ?? [];
    const mismatch = service === 'test_mismatch';
    const areaCode = mismatch && asked.length > 0 ? otherAreaCode(asked) : asked[0];
    const carrier = mismatch ? 'other' : (carriers[0] ?? 'tmo');
    return {
      providerOrderId: sandboxOrderId(clientRef, service, options?.capability === 'voice'),
      phoneNumber: phoneFor(clientRef, areaCode),
      endsAt: null,
      costMinor: null,
      ...(options?.areaCodes?.length || carriers.length > 0 ? { carrier } : {}),
    };
  }

  /** When the order's SMS arrives, or null when it never does. */
  deliveryAt(providerOrderId: string, since: Date): Date | null {
    const parsed = parseOrderId(providerOrderId);
    if (!parsed) return null;
    const start = since.getTime();
    switch (parsed.service) {
      case 'test_success':
      case 'test_voice_recording':
        return new Date(start + 800);
      case 'test_delayed':
        return new Date(start + this.options.delayMs);
      case 'test_timeout':
      case 'test_alternate':
      case 'test_no_numbers':
      case 'test_provider_error':
        return null;
      case 'test_late':
        return new Date(start + this.options.ttlSeconds * 1000 + 5_000);
      case 'test_ambiguous':
        return new Date(start + 1_000);
    }
    const roll = digest('fate', parsed.clientRef).readUInt32BE(0) / 0x1_0000_0000;
    if (roll < this.options.failureRate) return null;
    const spread = digest('delay', parsed.clientRef).readUInt32BE(0) / 0x1_0000_0000;
    return new Date(start + 1_000 + Math.floor(spread * this.options.delayMs * 2));
  }

  async check(order: OrderRef): Promise<OrderCheck> {
    if (!parseOrderId(order.providerOrderId)) return { state: 'unknown', messages: [] };
    const at = this.deliveryAt(order.providerOrderId, order.since);
    if (!at || this.options.clock.now() < at) return { state: 'waiting', messages: [] };
    return { state: 'received', messages: [this.messageFor(order.providerOrderId, at)] };
  }

  /**
   * The SMS of an order delivered at `receivedAt`. Each wait on the order (the purchase, another
   * code) has its own delivery time, so the time names the message and picks its code.
   */
  messageFor(providerOrderId: string, receivedAt: Date): ProviderMessage {
    const parsed = parseOrderId(providerOrderId)!;
    const id = `${providerOrderId}#${receivedAt.getTime()}`;
    const code = codeFor(id);
    const label = sandboxServices.find((s) => s.service === parsed.service)?.name ?? parsed.service;
    if (parsed.voice && parsed.service === 'test_voice_recording') {
      // TextVerified's call record has a recording link and no transcription (docs/number-options.md).
      const recording = `https://recordings.sandbox.invalid/${digest('recording', id).toString('hex').slice(0, 16)}.mp3`;
      return { providerMessageId: id, text: `Voice call from 18005550199; the code is spoken in the recording: ${recording}`, code: null, receivedAt };
    }
    const text = parsed.voice ? `Voice call transcript: your ${label} verification code is ${code}` : `Your ${label} verification code is ${code}`;
    return { providerMessageId: id, text, code, receivedAt };
  }

  /**
   * Another code on the same order, free, as SMS-Activate's setStatus 3: the new wait starts when
   * it is asked for (the child's `since`), and delivers as the scenario says (`test_success` at
   * once, `test_timeout` never, ordinary services after a delay).
   */
  async anotherCode(order: OrderRef): Promise<AnotherCodeOrder> {
    const parsed = parseOrderId(order.providerOrderId);
    if (!parsed) throw new ProviderError('definite', 'rejected', 'sandbox: no such order');
    return { providerOrderId: order.providerOrderId, phoneNumber: order.phoneNumber, endsAt: null, costMinor: 0 };
  }

  /** Reports are accepted, and refunded at once when asked about (a demo of the report's refund). */
  async report(providerOrderId: string): Promise<void> {
    if (!parseOrderId(providerOrderId)) throw new ProviderError('definite', 'rejected', 'sandbox: no such order');
  }

  async reportOutcome(providerOrderId: string): Promise<'refunded' | 'pending' | 'declined'> {
    return parseOrderId(providerOrderId) ? 'refunded' : 'declined';
  }

  async cancel(providerOrderId: string): Promise<CancelOutcome> {
    // Stateless: the sandbox does not know when the order started, so it cannot tell whether its SMS
    // came; it agrees to cancel any of its orders and the lifecycle's compare-and-set decides.
    return parseOrderId(providerOrderId) ? { outcome: 'cancelled' } : { outcome: 'gone' };
  }

  async balance(): Promise<{ amountMinor: number; currency: string }> {
    return { amountMinor: 1_000_000, currency: 'USD' };
  }
}

/** Reads a verification code out of an SMS text: the longest run of 4–8 digits. */
export function parseCode(text: string): string | null {
  const runs = text.match(/\b\d{4,8}\b/g) ?? text.match(/\d{3}[- ]\d{3}/g)?.map((r) => r.replace(/\D/g, ''));
  if (!runs || runs.length === 0) return null;
  return runs.reduce((a, b) => (b.length > a.length ? b : a));
}
