import {
  ProviderError,
  type CancelOutcome,
  type CatalogueEntry,
  type FailureKind,
  type LookupRequest,
  type LookupResult,
  type OrderCheck,
  type OrderRef,
  type Provider,
  type ProviderErrorCode,
  type ProviderMessage,
  type ProviderOrder,
  type PurchaseRequest,
} from '../../src/providers/provider.ts';

/**
 * A provider whose every answer the test decides. Behaviours are functions so a test can change
 * them between steps; calls are counted so "one upstream purchase" is checkable.
 */
export class ScriptedProvider implements Provider {
  /** The provider name it answers as (several scripted upstreams side by side need their own). */
  constructor(readonly name: string = 'sandbox') {}
  calls = { buy: 0, lookup: 0, check: 0, cancel: 0 };
  orders = new Map<string, ProviderOrder>();
  messages = new Map<string, ProviderMessage[]>();
  /** Orders the upstream has agreed to cancel (a cancel answered 'cancelled'). */
  cancelledOrders = new Set<string>();
  /** While set, every call (counted first: it reached the upstream) fails with this error. */
  outage: (() => Error) | undefined;

  onBuy: (request: PurchaseRequest) => Promise<ProviderOrder> = (request) => this.defaultBuy(request);
  onLookup: (request: LookupRequest) => Promise<LookupResult> = (request) => this.defaultLookup(request);
  onCheck: (order: OrderRef) => Promise<OrderCheck> = (order) => this.defaultCheck(order);
  onCancel: (providerOrderId: string) => Promise<CancelOutcome> = (id) => this.defaultCancel(id);

  /** Buys at once: the order exists upstream from now on. */
  async defaultBuy(request: PurchaseRequest): Promise<ProviderOrder> {
    return this.createOrder(request.clientRef);
  }
  /** Finds an order bought for the client reference; none → provably absent. */
  async defaultLookup(request: LookupRequest): Promise<LookupResult> {
    const order = this.orders.get(request.clientRef);
    return order ? { status: 'found', order } : { status: 'absent' };
  }
  /** The order's messages since it was bought. */
  async defaultCheck(order: OrderRef): Promise<OrderCheck> {
    const list = (this.messages.get(order.providerOrderId) ?? []).filter((m) => m.receivedAt >= order.since);
    return { state: list.length > 0 ? 'received' : 'waiting', messages: list };
  }
  /** Refuses once an SMS arrived (like real upstreams), else cancels. */
  async defaultCancel(id: string): Promise<CancelOutcome> {
    return (this.messages.get(id) ?? []).length > 0 ? { outcome: 'already_received' } : { outcome: 'cancelled' };
  }
  /** Back to the default behaviours, with no outage (orders, messages and counters are kept). */
  resetBehaviour(): void {
    this.onBuy = (request) => this.defaultBuy(request);
    this.onLookup = (request) => this.defaultLookup(request);
    this.onCheck = (order) => this.defaultCheck(order);
    this.onCancel = (id) => this.defaultCancel(id);
    this.outage = undefined;
  }

  createOrder(clientRef: string): ProviderOrder {
    const order = { providerOrderId: `ord-${clientRef}`, phoneNumber: `1555${String(this.orders.size).padStart(7, '0')}`, endsAt: null, costMinor: null };
    this.orders.set(clientRef, order);
    return order;
  }

  deliver(providerOrderId: string, text: string, code: string, receivedAt: Date): ProviderMessage {
    const message = { providerMessageId: `${providerOrderId}#${(this.messages.get(providerOrderId)?.length ?? 0) + 1}`, text, code, receivedAt };
    this.messages.set(providerOrderId, [...(this.messages.get(providerOrderId) ?? []), message]);
    return message;
  }

  async catalogue(): Promise<CatalogueEntry[]> {
    return [];
  }
  /** Makes every call fail until `restore()`: definite or ambiguous, with the given code. */
  failAll(kind: FailureKind, code: ProviderErrorCode = kind === 'definite' ? 'unavailable' : 'timeout'): void {
    this.outage = () => new ProviderError(kind, code, `scripted upstream: ${code}`);
  }
  restore(): void {
    this.outage = undefined;
  }
  /** The order bought for a client reference (a verification id). */
  orderOf(clientRef: string): ProviderOrder | undefined {
    return this.orders.get(clientRef);
  }

  async buy(request: PurchaseRequest) {
    this.calls.buy++;
    if (this.outage) throw this.outage();
    return this.onBuy(request);
  }
  async lookup(request: LookupRequest) {
    this.calls.lookup++;
    if (this.outage) throw this.outage();
    return this.onLookup(request);
  }
  async check(order: OrderRef) {
    this.calls.check++;
    if (this.outage) throw this.outage();
    return this.onCheck(order);
  }
  async cancel(providerOrderId: string) {
    this.calls.cancel++;
    if (this.outage) throw this.outage();
    const answer = await this.onCancel(providerOrderId);
    if (answer.outcome === 'cancelled') this.cancelledOrders.add(providerOrderId);
    return answer;
  }
  async balance() {
    return { amountMinor: 0, currency: 'USD' };
  }
}

/** A scripted provider that can also list its active orders in one call (checkMany), like SMS-Activate. */
export class ListingScriptedProvider extends ScriptedProvider {
  listCalls = 0;
  /** Called inside every list call, before it answers: a test holds it open or changes the world. */
  onList: () => Promise<void> | void = () => {};
  async checkMany(orders: OrderRef[]): Promise<Map<string, OrderCheck>> {
    this.listCalls++;
    if (this.outage) throw this.outage();
    await this.onList();
    const checks = new Map<string, OrderCheck>();
    for (const order of orders) checks.set(order.providerOrderId, await this.onCheck(order));
    return checks;
  }
}

/** A promise with its resolve/reject exposed: lets a test hold an upstream call open and release it later. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
