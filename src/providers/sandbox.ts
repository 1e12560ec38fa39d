import { createHash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import {
  ProviderError,
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
}

export const sandboxServices: { service: string; name: string; priceMinor: number }[] = [
  { service: 'test_success', name: 'Test: delivers at once', priceMinor: 50 },
  { service: 'test_delayed', name: 'Test: delivers after a delay', priceMinor: 50 },
  { service: 'test_timeout', name: 'Test: never delivers', priceMinor: 50 },
  { service: 'test_no_numbers', name: 'Test: no numbers', priceMinor: 50 },
  { service: 'test_provider_error', name: 'Test: upstream error', priceMinor: 50 },
  { service: 'test_ambiguous', name: 'Test: answer lost', priceMinor: 50 },
  { service: 'test_late', name: 'Test: SMS after the deadline', priceMinor: 50 },
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

const ORDER_PREFIX = 'sbx-';

function digest(...parts: string[]): Buffer {
  return createHash('sha256').update(parts.join('|')).digest();
}

/** A number in the fictional 555-01xx range, stable per order. */
function phoneFor(clientRef: string): string {
  const n = digest('phone', clientRef).readUInt32BE(0);
  return `1${String(200 + (n % 800))}555${String(100 + (n % 9900)).padStart(4, '0')}`;
}

function codeFor(orderId: string): string {
  return String(digest('code', orderId).readUInt32BE(0) % 1_000_000).padStart(6, '0');
}

export function sandboxOrderId(clientRef: string, service: string): string {
  return `${ORDER_PREFIX}${service}:${clientRef}`;
}

function parseOrderId(providerOrderId: string): { service: string; clientRef: string } | undefined {
  if (!providerOrderId.startsWith(ORDER_PREFIX)) return undefined;
  const rest = providerOrderId.slice(ORDER_PREFIX.length);
  const colon = rest.lastIndexOf(':');
  if (colon <= 0) return undefined;
  return { service: rest.slice(0, colon), clientRef: rest.slice(colon + 1) };
}

export class SandboxProvider implements Provider {
  readonly name = 'sandbox' as const;
  readonly kind = 'sandbox' as const;
  /** Purchases seen by this process (for tests: "one upstream purchase"). */
  readonly purchases = new Map<string, number>();

  constructor(private readonly options: SandboxOptions) {}

  async catalogue(): Promise<CatalogueEntry[]> {
    return sandboxCountries.flatMap((country) =>
      sandboxServices.map((s) => ({ service: s.service, country, costMinor: Math.max(1, Math.floor(s.priceMinor / 2)), available: 1000 })),
    );
  }

  async buy(request: PurchaseRequest): Promise<ProviderOrder> {
    switch (request.service) {
      case 'test_no_numbers':
        throw new ProviderError('definite', 'no_numbers', 'sandbox: no numbers for test_no_numbers');
      case 'test_provider_error':
        throw new ProviderError('definite', 'unavailable', 'sandbox: upstream answered 503', { status: 503 });
    }
    this.purchases.set(request.clientRef, (this.purchases.get(request.clientRef) ?? 0) + 1);
    if (request.service === 'test_ambiguous') {
      throw new ProviderError('ambiguous', 'connection_lost', 'sandbox: the order was created but the answer was lost');
    }
    return this.orderFor(request.clientRef, request.service);
  }

  async lookup(request: LookupRequest): Promise<LookupResult> {
    // Scenarios that fail before reaching the upstream never create an order; every other sandbox
    // order is derived from its client reference, so any process can find it.
    if (request.service === 'test_no_numbers' || request.service === 'test_provider_error') return { status: 'absent' };
    return { status: 'found', order: this.orderFor(request.clientRef, request.service) };
  }

  private orderFor(clientRef: string, service: string): ProviderOrder {
    return { providerOrderId: sandboxOrderId(clientRef, service), phoneNumber: phoneFor(clientRef), endsAt: null, costMinor: null };
  }

  /** When the order's SMS arrives, or null when it never does. */
  deliveryAt(providerOrderId: string, since: Date): Date | null {
    const parsed = parseOrderId(providerOrderId);
    if (!parsed) return null;
    const start = since.getTime();
    switch (parsed.service) {
      case 'test_success':
        return new Date(start + 800);
      case 'test_delayed':
        return new Date(start + this.options.delayMs);
      case 'test_timeout':
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

  messageFor(providerOrderId: string, receivedAt: Date): ProviderMessage {
    const parsed = parseOrderId(providerOrderId)!;
    const code = codeFor(providerOrderId);
    const label = sandboxServices.find((s) => s.service === parsed.service)?.name ?? parsed.service;
    return { providerMessageId: `${providerOrderId}#1`, text: `Your ${label} verification code is ${code}`, code, receivedAt };
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
