import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
/** A provider's configured name: lower case letters, digits and dashes (it names its variables too). */
export const PROVIDER_NAME = /^[a-z][a-z0-9-]{0,31}$/;
const PROVIDER_NAME_RULE = 'a provider name is lower-case letters, digits and dashes, starting with a letter';
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/**
 * Every setting, parsed once from the environment at start-up and passed down. Names are part of
 * the operator's contract (README, .env.example); nothing else reads process.env.
 */
export const configSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: int(0, 65535).default(3000),
  DATA_DIR: z.string().default('./data'),
  DATABASE_URL: optionalText.pipe(z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional()),
  DATABASE_POOL_SIZE: int(1, 200).default(10),

  // One upstream (the single-provider form, kept) or, with PROVIDERS, the first of several.
  PROVIDER: z.string().trim().regex(PROVIDER_NAME, PROVIDER_NAME_RULE).default('sandbox'),
  // Several upstreams at once, in order of preference; unset means PROVIDER alone.
  PROVIDERS: optionalText.pipe(
    z
      .string()
      .transform((v) => [...new Set(v.split(',').map((name) => name.trim()).filter((name) => name !== ''))].join(','))
      .pipe(z.string().regex(new RegExp(`^${PROVIDER_NAME.source.slice(1, -1)}(,${PROVIDER_NAME.source.slice(1, -1)})*$`), PROVIDER_NAME_RULE))
      .optional(),
  ),
  // Routing between several upstreams (docs/routing.md).
  ROUTING_WINDOW_MINUTES: int(1, 7 * 24 * 60).default(360),
  ROUTING_PRIOR_SUCCESS_RATE: z.coerce.number().min(0).max(1).default(0.7),
  ROUTING_PRIOR_WEIGHT: int(0, 10_000).default(10),
  // No default here: each adapter paces at its own upstream's safe rate unless this overrides it.
  PROVIDER_REQUESTS_PER_SECOND: optionalText.pipe(z.coerce.number<string | undefined>().min(0).optional()),
  PROVIDER_TIMEOUT_MS: int(100, 120_000).default(10_000),
  BREAKER_FAILURE_THRESHOLD: int(1, 1000).default(5),
  BREAKER_HALF_OPEN_AFTER_MS: int(100, 3_600_000).default(30_000),
  // Below this balance at an upstream (minor units), admins are alerted once per crossing; 0: no alert
  // unless set per provider on the Upstreams page.
  UPSTREAM_BALANCE_LOW_MINOR: int(0).default(0),
  UPSTREAM_BALANCE_CHECK_SECONDS: int(5, 86_400).default(300),

  TEXTVERIFIED_BASE_URL: z.string().url().default('https://www.textverified.com'),
  TEXTVERIFIED_API_USERNAME: optionalText,
  TEXTVERIFIED_API_KEY: optionalText,
  TEXTVERIFIED_WEBHOOK_SECRET: optionalText,
  SMS_ACTIVATE_BASE_URL: z.string().url().default('https://api.sms-activate.ae/stubs/handler_api.php'),
  SMS_ACTIVATE_API_KEY: optionalText,
  // What the upstream adds to its price for an area code, a carrier or voice (minor units), sent
  // up inside the price cap; the customer pays it with the offer's own margin.
  AREA_CODE_SURCHARGE_MINOR: int(0, 1_000_000).default(0),
  CARRIER_SURCHARGE_MINOR: int(0, 1_000_000).default(0),
  VOICE_SURCHARGE_MINOR: int(0, 1_000_000).default(0),

  SANDBOX_DELAY_MS: int(0, 3_600_000).default(5_000),
  SANDBOX_FAILURE_RATE: z.coerce.number().min(0).max(1).default(0.25),

  PAYMENT_PROCESSORS: z
    .string()
    .default('sandbox')
    .transform((v) => [...new Set(v.split(',').map((name) => name.trim()).filter((name) => name !== ''))])
    .pipe(z.array(z.enum(['sandbox', 'stripe', 'paystack'])).min(1, 'name at least one processor')),
  TOP_UP_MIN_MINOR: int(1).default(500),
  TOP_UP_MAX_MINOR: int(1).default(50_000),
  TOP_UP_CHECKOUT_TTL_MINUTES: int(5, 7 * 24 * 60).default(24 * 60),
  SANDBOX_PAYMENTS_WEBHOOK_SECRET: optionalText,
  STRIPE_SECRET_KEY: optionalText,
  STRIPE_WEBHOOK_SECRET: optionalText,
  STRIPE_API_BASE_URL: z.string().url().default('https://api.stripe.com'),
  PAYSTACK_SECRET_KEY: optionalText,
  PAYSTACK_BASE_URL: z.string().url().default('https://api.paystack.co'),

  ADMIN_EMAIL: optionalText.pipe(z.string().email().optional()),
  ADMIN_PASSWORD: optionalText,

  CURRENCY: z.string().regex(/^[A-Z]{3}$/).default('USD'),
  DEFAULT_COUNTRY: z.string().regex(/^[A-Z]{2}$/).default('US'),
  VERIFICATION_TTL_SECONDS: int(10, 86_400).default(1200),
  POLL_INTERVAL_MS: int(50, 600_000).default(3_000),
  ENGINE_TICK_MS: int(10, 60_000).default(500),
  ENGINE_CONCURRENCY: int(1, 64).default(8),
  EMBEDDED_UPKEEP_SECONDS: int(0, 86_400).default(30),
  LEASE_SECONDS: int(1, 3600).default(30),
  ENGINE_DEAD_AFTER_SECONDS: int(2, 3600).default(5),
  LATE_SMS_WINDOW_SECONDS: int(0, 86_400).default(300),
  PURCHASE_TIMEOUT_SECONDS: int(1, 600).default(30),

  MAX_ACTIVE_VERIFICATIONS: int(1, 10_000).default(20),
  PURCHASES_PER_MINUTE: int(1, 100_000).default(30),
  REPORTS_PER_DAY: int(1, 100_000).default(5),
  ANOTHER_CODE_WINDOW_SECONDS: int(0, 86_400).default(0),
  LOGIN_ATTEMPTS_PER_MINUTE: int(1, 1_000_000).default(10),
  LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE: int(1, 1_000_000).default(30),
  REGISTRATIONS_PER_ADDRESS_PER_HOUR: int(1, 1_000_000).default(20),
  API_KEYS_CREATED_PER_HOUR: int(1, 1_000_000).default(20),
  API_KEYS_CREATED_PER_ADDRESS_PER_HOUR: int(1, 1_000_000).default(60),
  BODY_LIMIT_BYTES: int(1024, 10_485_760).default(65_536),
  SESSION_TTL_HOURS: int(1, 24 * 365).default(24 * 7),
  COOKIE_SECURE: z.enum(['auto', 'true', 'false']).default('auto'),
  TRUST_PROXY: bool.default(false),
  METRICS_TOKEN: optionalText.pipe(
    z
      .string()
      .regex(/^[\x21-\x7e]{16,512}$/, 'must be 16-512 printable ASCII characters without spaces')
      .optional(),
  ),

  WEBHOOK_ALLOW_HTTP: bool.default(false),
  WEBHOOK_ALLOW_PRIVATE: bool.default(false),
  WEBHOOK_TIMEOUT_MS: int(100, 60_000).default(10_000),
  WEBHOOK_RESPONSE_MAX_BYTES: int(0, 65_536).default(1024),
  WEBHOOK_DISABLE_AFTER_HOURS: int(1, 24 * 30).default(24),
  WEBHOOK_SECRET_OVERLAP_HOURS: int(0, 24 * 7).default(24),
  PUBLIC_URL: optionalText.pipe(z.string().regex(/^https?:\/\/[^\s]+$/, 'must be an http:// or https:// URL').optional()),
  SMTP_URL: optionalText.pipe(z.string().regex(/^smtps?:\/\/[^\s]+$/, 'must be an smtp:// or smtps:// URL').optional()),
  MAIL_FROM: z.string().trim().min(3).default('Namaskah <no-reply@namaskah.local>'),
  REQUIRE_VERIFIED_EMAIL_FOR: z
    .string()
    .default('')
    .transform((text) => text.split(',').map((part) => part.trim()).filter((part) => part !== ''))
    .pipe(z.array(z.enum(['purchase', 'top_up']))),
  EMAIL_VERIFICATION_TTL_HOURS: int(1, 24 * 30).default(48),
  PASSWORD_RESET_TTL_MINUTES: int(5, 60).default(60),
  PASSWORD_RESETS_PER_ADDRESS_PER_HOUR: int(1, 1_000_000).default(20),
  REQUIRE_ADMIN_2FA: bool.default(false),
  RECENT_SIGN_IN_MINUTES: int(1, 24 * 60).default(15),

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FILE: optionalText,
});

export type Config = z.infer<typeof configSchema> & {
  /**
   * The per-provider variables (`PROVIDER_<NAME>_<SETTING>`, e.g. PROVIDER_DAISYSMS_API_KEY) as
   * found in the environment; read by src/providers/settings.ts for each configured name.
   */
  providerSettings: Readonly<Record<string, string>>;
};

/** Per-provider variables: PROVIDER_<NAME>_<SETTING> (see src/providers/settings.ts). */
const PROVIDER_SETTING = /^PROVIDER_[A-Z0-9_]+_(PROTOCOL|BASE_URL|API_KEY|API_USERNAME|WEBHOOK_SECRET|REQUESTS_PER_SECOND|TIMEOUT_MS|CURRENCY|COUNTRY_CODES|SERVICE_CODES|AREA_CODE_SURCHARGE_MINOR|CARRIER_SURCHARGE_MINOR|VOICE_SURCHARGE_MINOR)$/;


export class ConfigError extends Error {}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n');
    throw new ConfigError(`invalid configuration:\n${problems}`);
  }
  const providerSettings: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && value.trim() !== '' && PROVIDER_SETTING.test(name)) providerSettings[name] = value.trim();
  }
  return { ...parsed.data, providerSettings };
}

const MASK = '***';
/** Query parameters that carry secrets: libpq's password and sslpassword, upstreams' api_key, tokens. */
const SECRET_PARAMETER = /pass|pwd|secret|token|key|signature/i;
const SECRET_PARAMETER_VALUE = new RegExp(`([?&][^=&#\\s]*(?:${SECRET_PARAMETER.source})[^=&#\\s]*=)[^&#\\s]*`, 'gi');

/**
 * A connection string (or any URL) with its secrets masked, for logs and tool output: the password
 * of the user info (also when the user is empty, `postgres://:pw@host`), and every query parameter
 * named like a secret (`?password=`, `?sslpassword=`, `?api_key=`). Parsed with the WHATWG URL
 * parser; returned unchanged when there is nothing to mask.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return redactUnparsedUrl(url);
  }
  let masked = false;
  if (parsed.password !== '') {
    parsed.password = MASK;
    masked = true;
  }
  if (parsed.search.length > 1) {
    // Rebuilt by hand: URLSearchParams would re-encode the parameters that are not secret.
    const parameters = parsed.search.slice(1).split('&').map((pair) => {
      const equals = pair.indexOf('=');
      const name = equals < 0 ? pair : pair.slice(0, equals);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // A malformed escape: judge the name as written.
      }
      if (equals < 0 || !SECRET_PARAMETER.test(decoded)) return pair;
      masked = true;
      return `${name}=${MASK}`;
    });
    parsed.search = `?${parameters.join('&')}`;
  }
  return masked ? parsed.toString() : url;
}

/**
 * What the URL parser refuses (libpq accepts `postgres://user:pw@/db?host=/socket`) loses everything
 * between the scheme and its last @, and the values of secret-looking parameters: more than needed,
 * never less.
 */
function redactUnparsedUrl(url: string): string {
  const scheme = url.indexOf('://');
  const at = url.lastIndexOf('@');
  const masked = scheme >= 0 && at > scheme + 3 ? `${url.slice(0, scheme + 3)}${MASK}${url.slice(at)}` : url;
  return masked.replace(SECRET_PARAMETER_VALUE, `$1${MASK}`);
}
