import type { ErrorCode } from '../errors.ts';
import { minorToDecimal } from '../money.ts';

/**
 * What the protocol answers, as values: a text token (`ACCESS_NUMBER:123:15550100`) or a JSON
 * document, both with HTTP 200 as the protocol's sellers answer; only an error of our own is a 500
 * (`ERROR_SQL`, the protocol's word for it). Pure: the handler decides, the route writes.
 */
export type ProtocolAnswer = { kind: 'text'; body: string; status: 200 | 500 } | { kind: 'json'; body: unknown };

export function text(token: string, ...fields: (string | number)[]): ProtocolAnswer {
  return { kind: 'text', body: [token, ...fields].join(':'), status: 200 };
}

export function json(body: unknown): ProtocolAnswer {
  return { kind: 'json', body };
}

/** Our own failure: logged by the route, never described to the caller. */
export const INTERNAL_ERROR: ProtocolAnswer = { kind: 'text', body: 'ERROR_SQL', status: 500 };

/** A refusal in the protocol's words, thrown by an action and answered as its text. */
export class ProtocolRefusal extends Error {
  readonly answer: ProtocolAnswer;
  constructor(token: string, ...fields: (string | number)[]) {
    super(token);
    this.name = 'ProtocolRefusal';
    this.answer = text(token, ...fields);
  }
}

/**
 * The protocol's word for each refusal the purchase and cancel flows give (src/errors.ts codes).
 * A purchase that could not happen upstream is NO_NUMBERS whatever the reason: the customer was
 * not charged and the same thing is worth trying later or in another country. Undefined: not a
 * refusal the protocol knows, so an error of ours.
 */
export function tokenForDomainError(code: ErrorCode, extra: Record<string, unknown>): ProtocolAnswer | undefined {
  switch (code) {
    case 'insufficient_funds':
      return text('NO_BALANCE');
    case 'no_numbers':
    case 'provider_unavailable':
    case 'unknown_service':
      return text('NO_NUMBERS');
    case 'price_exceeds_max': {
      // Our price was above the customer's maxPrice: say the lowest one that buys. Without a
      // price it was the upstream's above our cap, which the customer cannot change.
      const price = extra.price_minor;
      return typeof price === 'number' ? text('WRONG_MAX_PRICE', minorToDecimal(price)) : text('NO_NUMBERS');
    }
    case 'option_not_offered':
      // The protocol's refusal of an `operator` the seller does not have.
      return text('WRONG_OPERATOR');
    case 'too_many_active':
      return text('TOO_MANY_ACTIVE_RENTALS');
    case 'email_unverified':
      // The operator requires a verified email before buying (REQUIRE_VERIFIED_EMAIL_FOR).
      return text('ACCOUNT_INACTIVE');
    case 'rate_limited':
      return text('RATE_LIMITED');
    case 'idempotency_key_reused':
      return text('IDEMPOTENCY_KEY_REUSED');
    case 'idempotency_in_progress':
      return text('IDEMPOTENCY_IN_PROGRESS');
    default:
      return undefined;
  }
}

/** An amount as the protocol's JSON price lists carry it: a number in major units. */
export function majorUnits(amountMinor: number): number {
  // Parsed from the exact decimal, not computed: two decimals of any wallet-sized amount are
  // printed back exactly by JSON.
  return Number(minorToDecimal(amountMinor));
}

/** The protocol's timestamps, "YYYY-MM-DD HH:MM:SS"; ours are in UTC. */
export function protocolTime(at: Date): string {
  return at.toISOString().slice(0, 19).replace('T', ' ');
}

/** Text after a token may not break the line it is on. */
export function oneLine(value: string): string {
  return value.replace(/[\r\n]+/g, ' ');
}
