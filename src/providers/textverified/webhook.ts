/**
 * TextVerified webhooks: `X-Webhook-Signature: HMAC-SHA512=<base64(hmac_sha512(rawBody, secret))>`
 * over the exact bytes received, and a JSON envelope `{id, event, occurredAt, attempt,
 * idempotencyKey, data}`. Verification must run on the raw body: re-serialised JSON would not match.
 *
 * Replay protection (remembering event ids) belongs to the HTTP layer; this module gives it the
 * event `id` and `occurredAt`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { isoInstant } from './schemas.ts';

const SIGNATURE_PREFIX = 'hmac-sha512=';
const SHA512_BYTES = 64;

export function verifyTextVerifiedWebhook(input: {
  rawBody: string | Buffer;
  signatureHeader: string | undefined;
  secret: string;
}): boolean {
  const { rawBody, signatureHeader, secret } = input;
  if (!signatureHeader || secret.length === 0) return false;
  const header = signatureHeader.trim();
  if (header.slice(0, SIGNATURE_PREFIX.length).toLowerCase() !== SIGNATURE_PREFIX) return false;
  const encoded = header.slice(SIGNATURE_PREFIX.length).trim();
  // Strict base64 of exactly 64 bytes: Buffer.from() silently skips junk characters.
  if (!/^[A-Za-z0-9+/]{86}==$/.test(encoded)) return false;
  const given = Buffer.from(encoded, 'base64');
  const expected = createHmac('sha512', secret).update(typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody).digest();
  if (given.length !== SHA512_BYTES || expected.length !== SHA512_BYTES) return false;
  return timingSafeEqual(given, expected);
}

/** The signature header value for a body, as TextVerified computes it (used by tests and the fake). */
export function signTextVerifiedWebhook(rawBody: string | Buffer, secret: string): string {
  const digest = createHmac('sha512', secret).update(typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody).digest('base64');
  return `HMAC-SHA512=${digest}`;
}

const envelopeSchema = z.object({
  id: z.string().min(1),
  event: z.string().min(1),
  occurredAt: isoInstant,
  attempt: z.number().int().nonnegative(),
  idempotencyKey: z.string().nullable().optional(),
  data: z.unknown(),
});

const smsDataSchema = z.object({
  id: z.string().min(1).optional(),
  from: z.string().nullable(),
  to: z.string().min(1),
  createdAt: isoInstant,
  smsContent: z.string().nullable(),
  parsedCode: z.string().nullable(),
  encrypted: z.boolean().optional(),
  reservationId: z.string().nullable().optional(),
  verificationId: z.string().nullable().optional(),
});

export interface TextVerifiedWebhookSms {
  /** TextVerified's SMS id when the event carries one. */
  id: string | null;
  from: string | null;
  to: string;
  createdAt: Date;
  smsContent: string | null;
  parsedCode: string | null;
  /** The reservation (verification) the SMS was assigned to, when given: our providerOrderId. */
  reservationId: string | null;
}

interface EnvelopeFields {
  id: string;
  occurredAt: Date;
  attempt: number;
  idempotencyKey: string | null;
}

export type TextVerifiedSmsReceivedEvent = EnvelopeFields & { event: 'v2.sms.received'; data: TextVerifiedWebhookSms };
/** Events we do not act on are still parsed, so the receiver can acknowledge them with 200. */
export type TextVerifiedOtherEvent = EnvelopeFields & { event: string; data: unknown };
export type TextVerifiedWebhookEvent = TextVerifiedSmsReceivedEvent | TextVerifiedOtherEvent;

export function isSmsReceivedEvent(event: TextVerifiedWebhookEvent): event is TextVerifiedSmsReceivedEvent {
  return event.event === 'v2.sms.received';
}

export class MalformedWebhookError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedWebhookError';
  }
}

/** Parses a (verified) webhook body. Throws MalformedWebhookError on anything off-shape. */
export function parseTextVerifiedWebhook(rawBody: string | Buffer): TextVerifiedWebhookEvent {
  let json: unknown;
  try {
    json = JSON.parse(typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8'));
  } catch {
    throw new MalformedWebhookError('webhook body is not JSON');
  }
  const envelope = envelopeSchema.safeParse(json);
  if (!envelope.success) throw new MalformedWebhookError(`webhook envelope: ${describe(envelope.error)}`);
  const { id, event, occurredAt, attempt, data } = envelope.data;
  const base: EnvelopeFields = { id, occurredAt, attempt, idempotencyKey: envelope.data.idempotencyKey ?? null };
  if (event !== 'v2.sms.received') return { ...base, event, data };

  const sms = smsDataSchema.safeParse(data);
  if (!sms.success) throw new MalformedWebhookError(`v2.sms.received data: ${describe(sms.error)}`);
  return {
    ...base,
    event: 'v2.sms.received',
    data: {
      id: sms.data.id ?? null,
      from: sms.data.from,
      to: sms.data.to,
      createdAt: sms.data.createdAt,
      smsContent: sms.data.smsContent,
      parsedCode: sms.data.parsedCode,
      reservationId: sms.data.reservationId ?? sms.data.verificationId ?? null,
    },
  };
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
}
