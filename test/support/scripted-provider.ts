import type {
  CancelOutcome,
  CatalogueEntry,
  LookupRequest,
  LookupResult,
  OrderCheck,
  OrderRef,
  Provider,
  ProviderMessage,
  ProviderOrder,
  PurchaseRequest,
} from '../../src/providers/provider.ts';

/**
 * A provider whose every answer the test decides. Behaviours are functions so a test can change
 * them between steps; calls are counted so "one upstream purchase" is checkable.
 */
export class ScriptedProvider implements Provider {
  readonly name = 'sandbox' as const;
  calls = { buy: 0, lookup: 0, check: 0, cancel: 0 };
  orders = new Map<string, ProviderOrder>();
  messages = new Map<string, ProviderMessage[]>();

  onBuy: (request: PurchaseRequest) => Promise<ProviderOrder> = async (request) => this.createOrder(request.clientRef);
  onLookup: (request: LookupRequest) => Promise<LookupResult> = async (request) => {
    const order = this.orders.get(request.clientRef);
    return order ? { status: 'found', order } : { status: 'absent' };
  };
  onCheck: (order: OrderRef) => Promise<OrderCheck> = async (order) => {
    const list = (this.messages.get(order.providerOrderId) ?? []).filter((m) => m.receivedAt >= order.since);
    return { state: list.length > 0 ? 'received' : 'waiting', messages: list };
  };
  onCancel: (providerOrderId: string) => Promise<CancelOutcome> = async (id) =>
    (this.messages.get(id) ?? []).length > 0 ? { outcome: 'already_received' } : { outcome: 'cancelled' };

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
  buy(request: PurchaseRequest) {
    this.calls.buy++;
    return this.onBuy(request);
  }
  lookup(request: LookupRequest) {
    this.calls.lookup++;
    return this.onLookup(request);
  }
  check(order: OrderRef) {
    this.calls.check++;
    return this.onCheck(order);
  }
  cancel(providerOrderId: string) {
    this.calls.cancel++;
    return this.onCancel(providerOrderId);
  }
  async balance() {
    return { amountMinor: 0, currency: 'USD' };
  }
}
