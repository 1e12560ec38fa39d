import { z } from 'zod';
import type { NumberOptions, ProviderCapabilities } from '../providers/provider.ts';

/**
 * Number options (area code, carrier, voice) as pure decisions: the canonical form of a request,
 * whether an upstream honours it, and what it adds to the price. No I/O here; the purchase and the
 * routing of purchases between upstreams call these.
 */

/** Most area codes or carriers one request may name (upstreams cap the list too: see capabilities). */
export const MAX_CHOICES = 10;
/** A North American area code: three digits, not starting with 0 or 1. */
export const AREA_CODE_PATTERN = /^[2-9]\d{2}$/;
/** A carrier as upstreams name them: short, lower-case letters, digits, `_` or `-`. */
export const CARRIER_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/**
 * The one form of a request that is stored, fingerprinted and sent upstream: choices sorted and
 * without duplicates, carriers lower-case, empty lists and the default capability (`sms`) left out,
 * so `{}` and `{capability: 'sms', areaCodes: []}` are the same request.
 */
export function canonicalOptions(options: NumberOptions | undefined): NumberOptions {
  const out: NumberOptions = {};
  const areaCodes = [...new Set(options?.areaCodes ?? [])].sort();
  const carriers = [...new Set((options?.carriers ?? []).map((c) => c.toLowerCase()))].sort();
  if (areaCodes.length > 0) out.areaCodes = areaCodes;
  if (carriers.length > 0) out.carriers = carriers;
  if (options?.capability === 'voice') out.capability = 'voice';
  return out;
}

export function isPlain(options: NumberOptions | undefined): boolean {
  const c = canonicalOptions(options);
  return c.areaCodes === undefined && c.carriers === undefined && c.capability === undefined;
}

export type Refusal = { ok: false; option: 'area_codes' | 'carriers' | 'capability'; reason: string };
export type Honoured = { ok: true } | Refusal;

/**
 * Whether an upstream with these capabilities can honour the request for a number in `country`.
 * A plain request is honoured by every upstream. Malformed choices are refused too, so the answer
 * never depends on what the caller validated first.
 */
export function honours(capabilities: ProviderCapabilities, options: NumberOptions | undefined, country: string): Honoured {
  const o = canonicalOptions(options);
  if (o.areaCodes) {
    if (!capabilities.areaCodes) return refuse('area_codes', 'this provider cannot choose the area code');
    if (!capabilities.areaCodeCountries.includes(country)) return refuse('area_codes', `area codes cannot be chosen for ${country} numbers`);
    if (o.areaCodes.length > Math.min(MAX_CHOICES, capabilities.maxChoices)) {
      return refuse('area_codes', `at most ${Math.min(MAX_CHOICES, capabilities.maxChoices)} area codes at once`);
    }
    const bad = o.areaCodes.find((a) => !AREA_CODE_PATTERN.test(a));
    if (bad !== undefined) return refuse('area_codes', `"${bad}" is not an area code (three digits, not starting with 0 or 1)`);
  }
  if (o.carriers) {
    if (!capabilities.carriers) return refuse('carriers', 'this provider cannot choose the carrier');
    if (o.carriers.length > Math.min(MAX_CHOICES, capabilities.maxChoices)) {
      return refuse('carriers', `at most ${Math.min(MAX_CHOICES, capabilities.maxChoices)} carriers at once`);
    }
    const bad = o.carriers.find((c) => !CARRIER_PATTERN.test(c) || (capabilities.carrierNames !== null && !capabilities.carrierNames.includes(c)));
    if (bad !== undefined) {
      const known = capabilities.carrierNames === null ? '' : ` (known: ${capabilities.carrierNames.join(', ')})`;
      return refuse('carriers', `carrier "${bad}" is not offered${known}`);
    }
  }
  if (o.capability === 'voice' && !capabilities.voice) return refuse('capability', 'this provider does not offer numbers verified by a voice call');
  return { ok: true };
}

function refuse(option: Refusal['option'], reason: string): Refusal {
  return { ok: false, option, reason };
}

/** What the options cost upstream: the upstream's surcharge for each option asked for. */
export function surchargeCost(capabilities: ProviderCapabilities, options: NumberOptions | undefined): number {
  const o = canonicalOptions(options);
  const cost =
    (o.areaCodes ? capabilities.surcharge.areaCodeMinor : 0) +
    (o.carriers ? capabilities.surcharge.carrierMinor : 0) +
    (o.capability === 'voice' ? capabilities.surcharge.voiceMinor : 0);
  if (!Number.isSafeInteger(cost) || cost < 0) throw new RangeError(`surcharge must be a whole number of minor units >= 0, got ${cost}`);
  return cost;
}

/**
 * What the options add to an offer at one provider (the reservation's SQL function prices them the
 * same way, migrations/0020): the upstream's surcharge (what it charges us, sent up as part of
 * the price cap) and our price for it, which carries the same margin as the offer itself —
 * surcharge × price ÷ cost, rounded up to a whole minor unit, in integer arithmetic. An offer sold
 * at cost passes surcharges on at cost.
 */
export function optionSurcharge(
  offer: { priceMinor: number; costMinor: number },
  capabilities: ProviderCapabilities,
  options: NumberOptions | undefined,
): { costMinor: number; priceMinor: number } {
  const cost = surchargeCost(capabilities, options);
  if (cost === 0) return { costMinor: 0, priceMinor: 0 };
  const margin = offer.costMinor > 0 && offer.priceMinor > offer.costMinor ? { num: offer.priceMinor, den: offer.costMinor } : { num: 1, den: 1 };
  const price = (BigInt(cost) * BigInt(margin.num) + BigInt(margin.den) - 1n) / BigInt(margin.den);
  if (price > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('surcharge price too large');
  return { costMinor: cost, priceMinor: Number(price) };
}

/** One provider standing behind an offer, as the options' price sees it: its cost and what it honours. */
export interface SurchargeRoute {
  costMinor: number;
  capabilities: ProviderCapabilities;
}

/**
 * The options' price on an offer several providers may serve (docs/number-options.md, "Price"):
 * each provider's own surcharge sold with the offer's margin at that provider (optionSurcharge with
 * the offer's price and that provider's cost), and the customer pays the highest of them. So
 * whichever of these providers routing or failover picks, the hold covers its cost with the options
 * and the margin there is never below the offer's own. `routes`: the providers that honour the
 * request (the caller filters them with honours). costMinor: the highest upstream surcharge among
 * them. With one route this is exactly optionSurcharge.
 */
export function routedOptionSurcharge(
  priceMinor: number,
  routes: readonly SurchargeRoute[],
  options: NumberOptions | undefined,
): { costMinor: number; priceMinor: number } {
  let highest = { costMinor: 0, priceMinor: 0 };
  for (const route of routes) {
    const own = optionSurcharge({ priceMinor, costMinor: route.costMinor }, route.capabilities, options);
    highest = { costMinor: Math.max(highest.costMinor, own.costMinor), priceMinor: Math.max(highest.priceMinor, own.priceMinor) };
  }
  return highest;
}

/** Whether a provider can take one option at all for `country` (what a listing prices; honours checks a whole request). */
function offersOption(capabilities: ProviderCapabilities, option: 'areaCodes' | 'carriers' | 'voice', country: string): boolean {
  if (option === 'areaCodes') return capabilities.areaCodes && capabilities.areaCodeCountries.includes(country);
  if (option === 'carriers') return capabilities.carriers;
  return capabilities.voice;
}

/** A request of just that one option, for pricing it alone. */
function oneOption(option: 'areaCodes' | 'carriers' | 'voice'): NumberOptions {
  if (option === 'voice') return { capability: 'voice' };
  return option === 'areaCodes' ? { areaCodes: ['212'] } : { carriers: ['any'] };
}

/**
 * What each option adds to a routed offer's price for the customer, as listings show it: per
 * option, the routed price over the routes that can take it (null when none can).
 */
export function listedOptionSurcharges(
  priceMinor: number,
  routes: readonly SurchargeRoute[],
  country: string,
): { area_code: number | null; carrier: number | null; voice: number | null } {
  const priced = (option: 'areaCodes' | 'carriers' | 'voice') => {
    const able = routes.filter((r) => offersOption(r.capabilities, option, country));
    return able.length === 0 ? null : routedOptionSurcharge(priceMinor, able, oneOption(option)).priceMinor;
  };
  return { area_code: priced('areaCodes'), carrier: priced('carriers'), voice: priced('voice') };
}

/** The options as the API shows them (snake_case, the same canonical form). */
export function optionsView(options: NumberOptions | null | undefined): { area_codes: string[]; carriers: string[]; capability: 'sms' | 'voice' } {
  const o = canonicalOptions(options ?? undefined);
  return { area_codes: o.areaCodes ?? [], carriers: o.carriers ?? [], capability: o.capability ?? 'sms' };
}

/** The request fields of a purchase that choose the number (JSON API; the same for one and for bulk). */
export const numberOptionFields = {
  area_codes: z
    .array(z.string().regex(AREA_CODE_PATTERN, 'three digits, not starting with 0 or 1'))
    .max(MAX_CHOICES)
    .optional()
    .describe('US area codes, any of which will do; adds the area-code surcharge (GET /v1/area-codes)'),
  carriers: z
    .array(z.string().trim().toLowerCase().regex(CARRIER_PATTERN, 'a carrier name such as att, tmo, vz'))
    .max(MAX_CHOICES)
    .optional()
    .describe('carriers, any of which will do; adds the carrier surcharge'),
  capability: z.enum(['sms', 'voice']).optional().describe('`voice`: the code comes by a call, transcribed into a message (default `sms`)'),
};

export function optionsFromBody(body: { area_codes?: string[]; carriers?: string[]; capability?: 'sms' | 'voice' }): NumberOptions | undefined {
  const options = canonicalOptions({ areaCodes: body.area_codes, carriers: body.carriers, capability: body.capability });
  return isPlain(options) ? undefined : options;
}

/** The options of a verification as the API shows them. */
export const NumberOptionsSchema = z
  .object({ area_codes: z.array(z.string()), carriers: z.array(z.string()), capability: z.enum(['sms', 'voice']) })
  .meta({ id: 'NumberOptions' });
