import type { Provider } from './provider.ts';

/**
 * The upstream an order belongs to. Every call about an existing order (poll, cancel, finish,
 * report, another code) goes to the provider recorded on its verification, never to "the current
 * one"; new code asks here rather than reading `deps.provider`.
 */
export function providerFor(deps: { provider: Provider }, _providerName: string): Provider {
  return deps.provider;
}
