/**
 * TextVerified API v2 answer shapes (from the published OpenAPI document), validated strictly on
 * the fields we use. Extra fields are allowed: the API adds fields, and an added field must not
 * turn every answer into a malformed one.
 */
import { z } from 'zod';

/** Timestamps are ISO 8601; one without a zone is read as UTC rather than as local time. */
export const isoInstant = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/i, 'not an ISO 8601 timestamp')
  .transform((text, ctx) => {
    const zoned = /(Z|[+-]\d{2}:?\d{2})$/i.test(text) ? text : `${text}Z`;
    const at = new Date(zoned);
    if (Number.isNaN(at.getTime())) {
      ctx.addIssue({ code: 'custom', message: 'invalid timestamp' });
      return z.NEVER;
    }
    return at;
  });

/**
 * A US number as TextVerified writes it ("2223334444", sometimes with +1), normalised to E.164
 * digits without '+': "12223334444". Anything else is not a phone number.
 */
export const usPhoneNumber = z.string().transform((text, ctx) => {
  const normalised = normaliseUsNumber(text);
  if (normalised === null) {
    ctx.addIssue({ code: 'custom', message: 'not a phone number' });
    return z.NEVER;
  }
  return normalised;
});

export function normaliseUsNumber(text: string): string | null {
  const compact = text.trim().replace(/^\+/, '');
  if (/^\d{10}$/.test(compact)) return `1${compact}`;
  if (/^1\d{10}$/.test(compact)) return compact;
  return null;
}

const money = z.number().finite().nonnegative();

export const linkSchema = z.object({
  method: z.string().nullable().optional(),
  href: z.string().nullable().optional(),
});

/** A link we must follow: the document marks it required and it is useless without an href. */
const requiredLinkSchema = z.object({
  method: z.string().nullable().optional(),
  href: z.string().min(1),
});

export const bearerTokenSchema = z.object({
  token: z.string().min(1),
  expiresIn: z.number().optional(),
  expiresAt: isoInstant,
});

export const errorBodySchema = z.object({
  errorCode: z.string().nullable(),
  errorDescription: z.string().nullable().optional(),
});

export const verificationSchema = z.object({
  id: z.string().min(1),
  number: usPhoneNumber,
  createdAt: isoInstant,
  endsAt: isoInstant,
  state: z.string().min(1),
  totalCost: money,
  serviceName: z.string(),
  cancel: z.object({ canCancel: z.boolean() }),
  report: z.object({ canReport: z.boolean() }).optional(),
  // ReuseAction: `reusableUntil` is set while the verification may be reused (shortly after its code).
  reuse: z.object({ reusableUntil: isoInstant.nullable().optional(), link: linkSchema.optional() }).optional(),
  // Where this verification's SMS are listed: followed as given, never rebuilt from the number.
  sms: requiredLinkSchema,
  // Where its calls are listed (`GET /calls?...`). Required by the document; read only for voice
  // orders, so an answer without it is refused only where it is needed.
  calls: requiredLinkSchema.optional(),
});
export type Verification = z.output<typeof verificationSchema>;

export const verificationCompactSchema = z.object({
  id: z.string().min(1),
  number: usPhoneNumber,
  createdAt: isoInstant,
  state: z.string().min(1),
  serviceName: z.string(),
  totalCost: money.optional(),
});

export const smsSchema = z.object({
  id: z.string().min(1),
  from: z.string().nullable().optional(),
  to: z.string(),
  createdAt: isoInstant,
  smsContent: z.string().nullable(),
  parsedCode: z.string().nullable(),
  encrypted: z.boolean().optional(),
});
export type Sms = z.output<typeof smsSchema>;

/**
 * The document's `Call` (tag "Calls And Voice - [ALPHA]"): `id`, `from`, `to`, `createdAt` and
 * `recordingUri`, nothing else (additionalProperties: false). No transcription, no parsed code.
 */
export const callSchema = z.object({
  id: z.string().min(1),
  from: z.string().nullable().optional(),
  to: z.string(),
  createdAt: isoInstant,
  recordingUri: z.string().nullable(),
});
export type Call = z.output<typeof callSchema>;

const paginationLinksSchema = z.object({
  current: linkSchema.nullable().optional(),
  previous: linkSchema.nullable().optional(),
  next: linkSchema.nullable().optional(),
});

export function paginated<T extends z.ZodType>(item: T) {
  return z.object({
    data: z.array(item),
    hasNext: z.boolean().optional(),
    links: paginationLinksSchema.optional(),
  });
}

// `currentBalance` is optional in the API document.
export const accountSchema = z.object({
  username: z.string(),
  currentBalance: money.nullable().optional(),
});

export const servicesSchema = z.array(
  z.object({
    serviceName: z.string().min(1),
    capability: z.string(),
  }),
);

export const pricingSchema = z.object({
  serviceName: z.string(),
  price: money,
});

/** `GET /area-codes`: `[{areaCode, state}]`. */
export const areaCodesSchema = z.array(
  z.object({
    areaCode: z.string().regex(/^\d{3}$/),
    state: z.string().nullable().optional(),
  }),
);
