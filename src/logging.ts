import pino, { type DestinationStream, type Logger, type StreamEntry } from 'pino';
import { redactUrl, type Config } from './config.ts';

/**
 * Structured JSON logs (pino) to stdout and, with LOG_FILE, to that file too. Secrets never reach a
 * log line: known secret-bearing fields are redacted by path, every message and error text is
 * scrubbed of connection-string secrets and bearer tokens, and a failed statement's parameters are
 * never logged (see serializeError).
 */
const SECRET_KEYS = [
  'password',
  'newPassword',
  'passwordHash',
  'password_hash',
  'token',
  'csrfToken',
  'csrf_token',
  'key',
  'apiKey',
  'api_key',
  'opsToken',
  'secret',
  'authorization',
  'cookie',
  'databaseUrl',
  'DATABASE_URL',
  'ADMIN_PASSWORD',
  'TEXTVERIFIED_API_KEY',
  'TEXTVERIFIED_WEBHOOK_SECRET',
  'SMS_ACTIVATE_API_KEY',
  'STRIPE_SECRET_KEY',
  'STRIPE_WEBHOOK_SECRET',
  'PAYSTACK_SECRET_KEY',
  'SANDBOX_PAYMENTS_WEBHOOK_SECRET',
  'SMTP_URL',
  'totp_code',
  'totpCode',
  'recovery_code',
  'recoveryCode',
  'current_password',
  'new_password',
];

export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-csrf-token"]',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers["set-cookie"]',
  'headers["x-csrf-token"]',
];

/** URL-shaped words of free text; each is redacted by the URL parser (redactUrl). */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;
const BEARER_TOKEN = /\b(ns[skoer]_)[A-Za-z0-9_-]{16,}/g;
/** Payment processors' secret keys and webhook secrets (Stripe sk_/rk_/whsec_, Paystack sk_). */
const PROCESSOR_SECRET = /\b((?:sk|rk)_(?:live|test)_|whsec_)[A-Za-z0-9_]{6,}/g;
/** The parameters a failed statement's error message lists (drizzle: "Failed query: …\nparams: …"). */
const STATEMENT_PARAMS = /(\bparams: )(?!\[not logged\])[^\n]*/g;
const PARAMS_NOT_LOGGED = '[not logged]';

/**
 * Removes secrets from free text (messages, stacks, tool output): connection-string passwords and
 * secret query parameters, Namaskah tokens, and the parameter list of a failed SQL statement.
 */
export function scrubSecrets(text: string): string {
  return text
    .replace(URL_IN_TEXT, redactUrlInText)
    .replace(BEARER_TOKEN, '$1[redacted]')
    .replace(PROCESSOR_SECRET, '$1[redacted]')
    .replace(STATEMENT_PARAMS, `$1${PARAMS_NOT_LOGGED}`);
}

const TRAILING_PUNCTUATION = /[)\]}>,.;:!?]+$/;

/** A URL-shaped word of free text, redacted as a URL without the punctuation that ends a sentence around it. */
function redactUrlInText(word: string): string {
  const suffix = TRAILING_PUNCTUATION.exec(word)?.[0] ?? '';
  if (suffix === '' || URL.canParse(word)) return redactUrl(word);
  return redactUrl(word.slice(0, word.length - suffix.length)) + suffix;
}

interface FailedStatement {
  query: string;
  params: unknown[];
}

/** The SQL statement behind an error (drizzle wraps the driver's error with it), if any. */
function failedStatement(error: unknown): FailedStatement | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const { query, params } = current as { query?: unknown; params?: unknown };
    if (typeof query === 'string' && Array.isArray(params)) return { query, params };
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Whether a statement (or a driver error naming its table) touches one of the tables that hold
 * credentials. Without the list every statement counts as one: nothing is ever logged that could be.
 */
function credentialMatcher(tables: readonly string[] | undefined): (query: string) => boolean {
  if (!tables || tables.length === 0) return () => true;
  const pattern = new RegExp(`(^|[^a-z0-9_$])"?(${tables.join('|')})"?($|[^a-z0-9_$])`, 'i');
  return (query) => pattern.test(query);
}

/**
 * pino's error serializer, then: the statement's parameters are cut from the message and the stack
 * and never copied as fields; only at `debug` or finer, and only for a statement on no credential
 * table, are they logged (as `params`). A driver's `detail` (it may quote a row's values, e.g. a
 * duplicate key) is dropped for credential tables.
 */
function serializeError(error: unknown, paramsWanted: () => boolean, touchesCredentials: (query: string) => boolean): unknown {
  const statement = failedStatement(error);
  const serialized = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
  if (!serialized || typeof serialized !== 'object') return serialized;
  delete serialized.params;
  for (const field of ['message', 'stack']) {
    if (typeof serialized[field] === 'string') serialized[field] = scrubSecrets(withoutParams(serialized[field] as string, statement));
  }
  const table = (error as { table?: unknown }).table;
  const credential =
    (statement !== undefined && touchesCredentials(statement.query)) || (typeof table === 'string' && touchesCredentials(table));
  if (credential) delete serialized.detail;
  if (statement && !credential && paramsWanted()) serialized.params = statement.params;
  return serialized;
}

/** Cuts the exact parameter list out of a text (robust to parameters holding newlines). */
function withoutParams(text: string, statement: FailedStatement | undefined): string {
  if (!statement) return text;
  let listed: string;
  try {
    listed = String(statement.params);
  } catch {
    return text;
  }
  return listed === '' ? text : text.split(`params: ${listed}`).join(`params: ${PARAMS_NOT_LOGGED}`);
}

interface RequestLike {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/**
 * The request line of every access log (fastify's fields), with secret-looking query parameters
 * masked: some clients can only send their API key as `?api_key=`.
 */
function serializeRequest(req: RequestLike): Record<string, unknown> {
  return {
    method: req.method,
    url: typeof req.url === 'string' ? redactUrl(req.url) : req.url,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

export interface LoggerOptions {
  /** Replaces stdout (tests capture the output here). */
  destination?: DestinationStream;
  /**
   * Tables whose statements are never logged with their parameters or the driver's detail (the
   * composition root passes the accounts module's list). Without it, no statement ever is.
   */
  credentialTables?: readonly string[];
}

export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'LOG_FILE'>, options: LoggerOptions = {}): Logger {
  const streams: StreamEntry[] = [{ level: 'trace', stream: options.destination ?? pino.destination({ dest: 1, sync: true }) }];
  if (config.LOG_FILE) {
    streams.push({ level: 'trace', stream: pino.destination({ dest: config.LOG_FILE, mkdir: true, sync: true }) });
  }
  // Statement parameters are worth logging only while debugging; the level is read at each error.
  let logger: Logger | undefined;
  const touchesCredentials = credentialMatcher(options.credentialTables);
  const serialize = (error: unknown) => serializeError(error, () => logger?.isLevelEnabled('debug') ?? false, touchesCredentials);
  logger = pino(
    {
      level: config.LOG_LEVEL,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: serialize, error: serialize, req: serializeRequest },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((arg) => (typeof arg === 'string' ? scrubSecrets(arg) : arg));
          method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    pino.multistream(streams),
  );
  return logger;
}
