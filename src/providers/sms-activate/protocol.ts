/**
 * Reading the SMS-Activate `handler_api.php` protocol as its many sellers speak it: plain-text
 * tokens (`ACCESS_NUMBER:123:79991234567`), JSON for newer actions, errors as 200-with-text
 * (classic) or as 4xx with JSON `{title, details}` (HeroSMS), empty 204 bodies for some actions.
 * Sellers usually send text answers as `text/html` (PHP's default), so the content type proves
 * nothing; the body's shape is what is checked, and an actual HTML page is never data.
 */
import { z } from 'zod';
import { looksLikeHtml, malformed, snippet, type UpstreamResponse } from '../http.ts';
import { ProviderError, type ProviderErrorCode } from '../provider.ts';

export type Answer =
  | { kind: 'empty'; status: number; headers: Headers }
  | { kind: 'text'; status: number; headers: Headers; token: string; fields: string[]; raw: string }
  | { kind: 'json'; status: number; headers: Headers; value: unknown };

export function readAnswer(res: UpstreamResponse, label: string): Answer {
  const body = res.body.trim();
  const { status, headers } = res;
  if (body === '') return { kind: 'empty', status, headers };
  if (body.startsWith('<') || looksLikeHtml(res)) throw malformed(label, `HTML page (status ${status})`, status);
  if (body.startsWith('{') || body.startsWith('[')) {
    try {
      return { kind: 'json', status, headers, value: JSON.parse(body) };
    } catch {
      throw malformed(label, `broken JSON (status ${status}): ${snippet(body)}`, status);
    }
  }
  if (!/^[A-Z][A-Z0-9_]*(:[\s\S]*)?$/.test(body)) throw malformed(label, `not a protocol answer: ${snippet(body)}`, status);
  const [token = '', ...fields] = body.split(':');
  return { kind: 'text', status, headers, token, fields, raw: body };
}

/** The answer's protocol token: the text token, or the error name of a JSON error object. */
export function tokenOf(answer: Answer): string | null {
  if (answer.kind === 'text') return answer.token;
  if (answer.kind !== 'json' || answer.value === null || typeof answer.value !== 'object' || Array.isArray(answer.value)) return null;
  const value = answer.value as Record<string, unknown>;
  // HeroSMS: {title, details, info}; classic JSON actions: {status: "error", error: "NO_ACTIVATIONS"};
  // HeroSMS price lists: {status: "false", msg: "country is incorrect"}.
  let name: string | null = null;
  if (typeof value.title === 'string') name = value.title;
  else if (value.status === 'error' && typeof value.error === 'string') name = value.error;
  else if (value.status === 'false' && typeof value.msg === 'string') name = value.msg;
  return name === null ? null : name.trim().toUpperCase().replace(/[\s-]+/g, '_');
}

/** A number from a JSON error's `info` object (HeroSMS: `info.minActivationTime`), if present. */
export function infoNumber(answer: Answer, field: string): number | undefined {
  if (answer.kind !== 'json' || answer.value === null || typeof answer.value !== 'object') return undefined;
  const info = (answer.value as Record<string, unknown>).info;
  if (info === null || typeof info !== 'object') return undefined;
  const value = Number((info as Record<string, unknown>)[field]);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** Text after the token, colons included: `FULL_SMS:Your code: 1234` → "Your code: 1234". */
export function restOf(answer: Answer): string {
  return answer.kind === 'text' ? answer.fields.join(':') : '';
}

/**
 * Tokens saying the activation does not exist (any more) upstream: it was never ours, the seller
 * forgot it, or it closed it (HeroSMS answers an unknown activation with 404 `NOT_FOUND`).
 */
export const GONE_TOKENS = new Set([
  'NO_ACTIVATION',
  'BAD_ID',
  'WRONG_ID',
  'WRONG_ACTIVATION_ID',
  'ACTIVATION_NOT_ACTIVE',
  'ACTIVATION_NOT_FOUND',
  'NOT_FOUND',
]);

/**
 * Error words sellers use, each proving the request did nothing upstream (union of the official
 * client, HeroSMS's document, DaisySMS's page and clients that record real answers).
 */
const DEFINITE_ERRORS: Record<string, ProviderErrorCode> = {
  NO_NUMBERS: 'no_numbers',
  NO_NUMBER: 'no_numbers',
  OPERATORS_NOT_FOUND: 'no_numbers',
  NO_BALANCE: 'upstream_balance',
  LOW_BALANCE: 'upstream_balance',
  BAD_BALANCE: 'upstream_balance',
  NO_MONEY: 'upstream_balance',
  NO_BALANCE_FORWARD: 'upstream_balance',
  BAD_KEY: 'bad_credentials',
  NO_KEY: 'bad_credentials',
  WRONG_KEY: 'bad_credentials',
  ERROR_WRONG_KEY: 'bad_credentials',
  WRONG_API_KEY: 'bad_credentials',
  BAD_API_KEY: 'bad_credentials',
  WRONG_MAX_PRICE: 'price_exceeds_max',
  MAX_PRICE_EXCEEDED: 'price_exceeds_max',
  RATE_LIMITED: 'rate_limited',
  RATE_LIMIT: 'rate_limited',
  TOO_MANY_REQUESTS: 'rate_limited',
  BAD_ACTION: 'rejected',
  WRONG_ACTION: 'rejected',
  BAD_SERVICE: 'rejected',
  WRONG_SERVICE: 'rejected',
  SERVICE_IS_INCORRECT: 'rejected',
  BAD_COUNTRY: 'rejected',
  WRONG_COUNTRY: 'rejected',
  WRONG_COUNTRY_ID: 'rejected',
  COUNTRY_IS_INCORRECT: 'rejected',
  WRONG_CURRENCY: 'rejected',
  WRONG_OPERATOR: 'rejected',
  WRONG_EXCEPTION_PHONE: 'rejected',
  WRONG_SECURITY: 'rejected',
  UNPROCESSABLE_ENTITY: 'rejected',
  BAD_STATUS: 'rejected',
  BANNED: 'rejected',
  CHANNELS_LIMIT: 'rejected',
  TOO_MANY_ACTIVE_RENTALS: 'rejected',
  ORDER_ALREADY_EXISTS: 'rejected',
  ACCOUNT_INACTIVE: 'rejected',
  NOT_AVAILABLE: 'rejected',
  SERVICE_NOT_AVAILABLE: 'rejected',
  SERVICE_UNAVAILABLE_REGION: 'rejected',
  EARLY_CANCEL_DENIED: 'rejected',
  ...Object.fromEntries([...GONE_TOKENS].map((token) => [token, 'rejected' as const])),
};

/** The seller's own failure: like a 5xx, it may have happened after the request did something. */
const SERVER_ERRORS = new Set(['ERROR_SQL', 'SQL_ERROR', 'SERVER_ERROR']);

/**
 * Turns an error answer into a classified failure. A word we do not know is still a well-formed
 * answer from a working seller: `unrecognised_answer`, which does not count against the breaker —
 * ambiguous on a call that changes something (we cannot tell what happened), definite on a read.
 */
export function errorFor(token: string, answer: Answer, label: string, mutating: boolean): ProviderError {
  const detail = answer.kind === 'text' ? answer.raw : `${token} (status ${answer.status})`;
  const status = answer.status;
  if (SERVER_ERRORS.has(token)) {
    return new ProviderError(mutating ? 'ambiguous' : 'definite', 'server_error', `${label}: ${detail}`, { status });
  }
  const code = DEFINITE_ERRORS[token];
  if (code) return new ProviderError('definite', code, `${label}: ${snippet(detail)}`, { status });
  return new ProviderError(mutating ? 'ambiguous' : 'definite', 'unrecognised_answer', `${label}: unknown answer ${snippet(detail)}`, { status });
}

/** ISO 4217 codes of the numeric currencies sellers send (`currency: 840`). */
const NUMERIC_CURRENCIES: Record<string, string> = { '840': 'USD', '643': 'RUB', '978': 'EUR', '156': 'CNY', '980': 'UAH', '356': 'INR' };

/** A seller's currency field as an ISO code; undefined when absent, the raw value when unknown. */
export function currencyOf(value: unknown): string | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  const text = String(value).trim().toUpperCase();
  if (/^[A-Z]{3}$/.test(text)) return text;
  return NUMERIC_CURRENCIES[text] ?? `numeric ${text}`;
}

// ---- Values ---------------------------------------------------------------------------------------

/** Seller phone numbers carry the country code; E.164 allows at most 15 digits. */
export function normalisePhone(value: string | number): string | null {
  const text = typeof value === 'number' ? (Number.isSafeInteger(value) ? String(value) : '') : value.trim();
  const digits = text.replace(/^\+/, '');
  return /^\d{8,15}$/.test(digits) ? digits : null;
}

export function normaliseId(value: string | number): string | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? String(value) : null;
  const text = value.trim();
  return /^[A-Za-z0-9_-]{1,64}$/.test(text) ? text : null;
}

/**
 * Seller timestamps: "2022-06-01 17:30:57" without a zone (read at the configured UTC offset;
 * SMS-Activate wrote Moscow time), ISO 8601 with a zone, or epoch seconds/milliseconds.
 */
export function parseSellerTime(value: unknown, utcOffsetMinutes: number): Date | null {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0) return null;
    return new Date(value < 1e12 ? value * 1000 : value);
  }
  if (typeof value !== 'string') return null;
  const text = value.trim();
  const local = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/.exec(text);
  if (local) {
    const [y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0] = local.slice(1).map(Number);
    return new Date(Date.UTC(y, mo - 1, d, h, mi, s) - utcOffsetMinutes * 60_000);
  }
  if (/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})$/i.test(text)) {
    const at = new Date(text);
    return Number.isNaN(at.getTime()) ? null : at;
  }
  if (/^\d{9,13}$/.test(text)) return parseSellerTime(Number(text), utcOffsetMinutes);
  return null;
}

// ---- JSON shapes ------------------------------------------------------------------------------------

const idValue = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const id = normaliseId(value);
  if (id === null) {
    ctx.addIssue({ code: 'custom', message: 'not an activation id' });
    return z.NEVER;
  }
  return id;
});

const phoneValue = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const phone = normalisePhone(value);
  if (phone === null) {
    ctx.addIssue({ code: 'custom', message: 'not a phone number' });
    return z.NEVER;
  }
  return phone;
});

const decimalValue = z.union([z.string(), z.number()]);
const looseScalar = z.union([z.string(), z.number()]).nullable().optional();

export const numberV2Schema = z.object({
  activationId: idValue,
  phoneNumber: phoneValue,
  activationCost: decimalValue.nullable().optional(),
  currency: looseScalar,
  countryCode: looseScalar,
  activationTime: looseScalar,
  activationEndTime: looseScalar,
  // The operator (carrier) the seller assigned, when it says.
  activationOperator: z.string().nullable().optional(),
});

// Some sellers send SMS lists as arrays, some as a JSON-encoded array inside a string.
const smsList = z
  .union([z.string(), z.array(z.union([z.string(), z.number()])), z.null()])
  .optional()
  .transform((value): string[] => {
    if (value === null || value === undefined) return [];
    if (Array.isArray(value)) return value.map(String).filter((s) => s.trim() !== '');
    const text = value.trim();
    if (text === '') return [];
    if (text.startsWith('[')) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (Array.isArray(parsed)) return parsed.map(String).filter((s) => s.trim() !== '');
      } catch {
        // Not JSON after all: a message that starts with '['.
      }
    }
    return [text];
  });

export const activeActivationSchema = z.object({
  activationId: idValue,
  serviceCode: z.string().min(1),
  phoneNumber: phoneValue,
  activationCost: decimalValue.nullable().optional(),
  activationStatus: looseScalar,
  smsCode: smsList,
  smsText: smsList,
  activationTime: looseScalar,
  countryCode: looseScalar,
  currency: looseScalar,
});
export type ActiveActivationWire = z.output<typeof activeActivationSchema>;

const activationList = z.union([z.array(activeActivationSchema), z.record(z.string(), activeActivationSchema)]);

/** SMS-Activate names the list `activeActivations`; HeroSMS pages it under `data`. */
export const activeActivationsSchema = z.union([
  z.object({ status: z.literal('success'), activeActivations: activationList }),
  z.object({ status: z.literal('success'), data: activationList }),
]);

export const pricesSchema = z.record(z.string(), z.record(z.string(), z.unknown()));
export const priceEntrySchema = z.object({
  cost: decimalValue,
  count: z.union([z.number(), z.string()]).nullable().optional(),
  /** DaisySMS (getPricesVerification): how long a number of this service lives, in seconds. */
  ttl: z.union([z.number(), z.string()]).nullable().optional(),
});
