/**
 * TextVerified webhooks: `X-Webhook-Signature: HMAC-SHA512=<base64(hmac_sha512(rawBody, secret))>`
 * over the exact bytes received, and a JSON envelope `{id, event, occurredAt, attempt,
 * idempotencyKey, data}`. Verification must run on the raw body: re-serialised JSON would not match.
 *
 * Replay protection (remembering event ids and idempotency keys) and the age limit belong to the
 * HTTP layer; this module gives it the vendor-neutral event.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { MalformedWebhookError, type ProviderWebhooks, type WebhookEvent, type WebhookRequest } from '../provider.ts';
import { messageFromSms } from './messages.ts';
import { isoInstant, normaliseUsNumber } from './schemas.ts';

const SIGNATURE_HEADER = 'x-webhook-signature';
const SIGNATURE_PREFIX = 'hmac-sha512=';
const SHA512_BYTES = 64;

/** The webhook capability of the TextVerified adapter, for the endpoint's `whsec_…` secret. */
export function textVerifiedWebhooks(secret: string): ProviderWebhooks {
  return {
    verify: (request: WebhookRequest) => {
      const header = request.headers[SIGNATURE_HEADER];
      return verifyTextVerifiedWebhook({ rawBody: request.rawBody, signatureHeader: typeof header === 'string' ? header : undefined, secret });
    },
    parse: parseTextVerifiedWebhook,
  };
}

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

const envelopeSchema = z.object({
  id: z.string().min(1),
  event: z.string().min(1),
  occurredAt: isoInstant,
  attempt: z.number().int().nonnegative(),
  idempotencyKey: z.string().nullable().optional(),
  data: z.unknown(),
});

/**
 * `v2.sms.received` data as documented (SmsWebhookEvent). It has no SMS id; the SMS is identified
 * by what both the webhook and the SMS list carry (see messages.ts).
 */
const smsDataSchema = z.object({
  from: z.string().nullable(),
  to: z.string().min(1),
  createdAt: isoInstant,
  smsContent: z.string().nullable(),
  parsedCode: z.string().nullable(),
  encrypted: z.boolean().optional(),
  reservationId: z.string().min(1).nullable().optional(),
});

/** Parses a (verified) webhook body. Throws MalformedWebhookError on anything off-shape. */
export function parseTextVerifiedWebhook(rawBody: string | Buffer): WebhookEvent {
  let json: unknown;
  try {
    json = JSON.parse(typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8'));
  } catch {
    throw new MalformedWebhookError('webhook body is not JSON');
  }
  const envelope = envelopeSchema.safeParse(json);
  if (!envelope.success) throw new MalformedWebhookError(`webhook envelope: ${describe(envelope.error)}`);
  const { id, event, occurredAt, data } = envelope.data;
  const base = { eventId: id, dedupeKey: envelope.data.idempotencyKey || null, occurredAt };
  // Other events are read too, so the receiver can acknowledge them (TextVerified disables
  // endpoints that keep failing).
  if (event !== 'v2.sms.received') return { ...base, sms: null };

  const sms = smsDataSchema.safeParse(data);
  if (!sms.success) throw new MalformedWebhookError(`v2.sms.received data: ${describe(sms.error)}`);
  return {
    ...base,
    sms: {
      providerOrderId: sms.data.reservationId ?? null,
      phoneNumber: normaliseUsNumber(sms.data.to),
      message: messageFromSms(sms.data),
    },
  };
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
}
