import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Where a customer's webhook may point (docs/webhooks.md, "Safety"): https only unless
 * WEBHOOK_ALLOW_HTTP, and only public unicast addresses unless WEBHOOK_ALLOW_PRIVATE — no loopback,
 * private, link-local (which holds the clouds' metadata service, 169.254.169.254), unique-local,
 * carrier-grade NAT, multicast or reserved address. An allowlist of the one public range, so a range
 * nobody thought of is refused. The rules are checked when an endpoint is saved and again at every
 * send, on the addresses the name resolves to then, and the request goes to the address checked.
 */
export interface AddressRules {
  allowHttp: boolean;
  allowPrivate: boolean;
}

/** Resolves a host name to its addresses (injected in tests; the system resolver otherwise). */
export type ResolveHost = (hostname: string) => Promise<string[]>;

export const systemResolver: ResolveHost = async (hostname) => (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

export class RefusedUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedUrlError';
  }
}

/** Why an address may not be called (undefined: it may). */
export function refusedAddress(address: string, rules: AddressRules): string | undefined {
  if (rules.allowPrivate) return undefined;
  if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  const range = parsed.range();
  return range === 'unicast' ? undefined : `${address} is a ${range} address`;
}

/** The URL's own rules (scheme, no credentials, no fragment); the host's addresses are checked by `checkTarget`. */
export function parseWebhookUrl(raw: string, rules: AddressRules): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RefusedUrlError('is not a valid URL');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && rules.allowHttp)) {
    throw new RefusedUrlError(rules.allowHttp ? 'must be an http or https URL' : 'must be an https URL');
  }
  if (url.username || url.password) throw new RefusedUrlError('must not carry credentials');
  if (url.hash) throw new RefusedUrlError('must not have a fragment');
  return url;
}

/** The host of a URL without IPv6 brackets. */
function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/**
 * The address a request to `url` may go to: an IP literal is judged as it is, a name by every
 * address it resolves to (one refused address refuses the name: a resolver may answer either).
 * When saving an endpoint (`unresolved: 'accept'`) a name that does not resolve yet is accepted,
 * since the check at send time decides; at send time it is an error.
 */
export async function checkTarget(url: URL, rules: AddressRules, resolve: ResolveHost): Promise<string>;
export async function checkTarget(url: URL, rules: AddressRules, resolve: ResolveHost, unresolved: 'accept'): Promise<string | undefined>;
export async function checkTarget(url: URL, rules: AddressRules, resolve: ResolveHost, unresolved?: 'accept'): Promise<string | undefined> {
  const host = hostOf(url);
  if (isIP(host)) {
    const refused = refusedAddress(host, rules);
    if (refused) throw new RefusedUrlError(`points to a refused address: ${refused}`);
    return host;
  }
  if (!rules.allowPrivate && (host === 'localhost' || host.endsWith('.localhost'))) {
    throw new RefusedUrlError('points to a refused address: localhost');
  }
  let addresses: string[] = [];
  let failure = 'it has no address';
  try {
    addresses = await resolve(host);
  } catch (error) {
    failure = error instanceof Error ? error.message : String(error);
  }
  if (addresses.length === 0) {
    if (unresolved === 'accept') return undefined;
    throw new RefusedUrlError(`host ${host} could not be resolved: ${failure}`);
  }
  for (const address of addresses) {
    const refused = refusedAddress(address, rules);
    if (refused) throw new RefusedUrlError(`points to a refused address: ${host} resolves to ${refused}`);
  }
  return addresses[0]!;
}
