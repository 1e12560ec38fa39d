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
  // HeroSMS: {title, details}; classic JSON actions: {status: "error", error: "NO_ACTIVATIONS"}.
  const name = typeof value.title === 'string' ? value.title : value.status === 'error' && typeof value.error === 'string' ? value.error : null;
  return name === null ? null : name.trim().toUpperCase().replace(/[\s-]+/g, '_');
}

/** Text after the token, colons included: `FULL_SMS:Your code: 1234` → "Your code: 1234". */
export function restOf(answer: Answer): string {
  return answer.kind === 'text' ? answer.fields.join(':') : '';
}

/** Error tokens that prove the request did nothing upstream. */
const DEFINITE_ERRORS: Record<string, ProviderErrorCode> = {
  NO_NUMBERS: 'no_numbers',
  NO_BALANCE: 'upstream_balance',
  NO_MONEY: 'upstream_balance',
  NO_BALANCE_FORWARD: 'upstream_balance',
  BAD_KEY: 'bad_credentials',
  WRONG_KEY: 'bad_credentials',
  WRONG_MAX_PRICE: 'price_exceeds_max',
  MAX_PRICE_EXCEEDED: 'price_exceeds_max',
  RATE_LIMITED: 'rate_limited',
  TOO_MANY_REQUESTS: 'rate_limited',
  BAD_ACTION: 'rejected',
  WRONG_ACTION: 'rejected',
  BAD_SERVICE: 'rejected',
  WRONG_SERVICE: 'rejected',
  BAD_COUNTRY: 'rejected',
  WRONG_COUNTRY_ID: 'rejected',
  WRONG_OPERATOR: 'rejected',
  WRONG_EXCEPTION_PHONE: 'rejected',
  BAD_STATUS: 'rejected',
  BANNED: 'rejected',
  CHANNELS_LIMIT: 'rejected',
  TOO_MANY_ACTIVE_RENTALS: 'rejected',
  ACCOUNT_INACTIVE: 'rejected',
  SERVICE_NOT_AVAILABLE: 'rejected',
  SERVICE_UNAVAILABLE_REGION: 'rejected',
  EARLY_CANCEL_DENIED: 'rejected',
  NO_ACTIVATION: 'rejected',
  BAD_ID: 'rejected',
  WRONG_ACTIVATION_ID: 'rejected',
  ACTIVATION_NOT_ACTIVE: 'rejected',
};

/** Tokens saying the activation does not exist (any more) upstream. */
export const GONE_TOKENS = new Set(['NO_ACTIVATION', 'BAD_ID', 'WRONG_ACTIVATION_ID', 'ACTIVATION_NOT_ACTIVE']);

/** Turns an error answer into a classified failure. Unknown tokens are ambiguous: we cannot tell what happened. */
export function errorFor(token: string, answer: Answer, label: string, mutating: boolean): ProviderError {
  const detail = answer.kind === 'text' ? answer.raw : `${token} (status ${answer.status})`;
  const status = answer.status;
  if (token === 'ERROR_SQL') {
    return new ProviderError(mutating ? 'ambiguous' : 'definite', 'server_error', `${label}: ${detail}`, { status });
  }
  const code = DEFINITE_ERRORS[token];
  if (code) return new ProviderError('definite', code, `${label}: ${snippet(detail)}`, { status });
  return malformed(label, `unexpected answer ${snippet(detail)}`, status);
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
    const [y, mo, d, h, mi, s] = local.slice(1).map(Number) as [number, number, number, number, number, number];
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
  countryCode: looseScalar,
  activationTime: looseScalar,
  activationEndTime: looseScalar,
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
});
export type ActiveActivationWire = z.output<typeof activeActivationSchema>;

export const activeActivationsSchema = z.object({
  status: z.literal('success'),
  activeActivations: z.union([z.array(activeActivationSchema), z.record(z.string(), activeActivationSchema)]),
});

export const pricesSchema = z.record(z.string(), z.record(z.string(), z.unknown()));
export const priceEntrySchema = z.object({
  cost: decimalValue,
  count: z.union([z.number(), z.string()]).nullable().optional(),
});
