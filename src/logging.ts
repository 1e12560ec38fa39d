import pino, { type DestinationStream, type Logger, type StreamEntry } from 'pino';
import type { Config } from './config.ts';

/**
 * Structured JSON logs (pino) to stdout and, with LOG_FILE, to that file too. Secrets never reach a
 * log line: known secret-bearing fields are redacted by path, and every message and error text is
 * scrubbed of connection-string passwords and bearer tokens.
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

const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]+):[^@\s]*@/gi;
const BEARER_TOKEN = /\b(ns[sko]_)[A-Za-z0-9_-]{16,}/g;

/** Removes connection-string passwords and Namaskah tokens from free text (messages, stacks). */
export function scrubSecrets(text: string): string {
  return text.replace(URL_PASSWORD, '$1:***@').replace(BEARER_TOKEN, '$1[redacted]');
}

function serializeError(error: unknown): unknown {
  const serialized = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
  if (!serialized || typeof serialized !== 'object') return serialized;
  for (const field of ['message', 'stack']) {
    if (typeof serialized[field] === 'string') serialized[field] = scrubSecrets(serialized[field] as string);
  }
  return serialized;
}

export interface LoggerOptions {
  /** Replaces stdout (tests capture the output here). */
  destination?: DestinationStream;
}

export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'LOG_FILE'>, options: LoggerOptions = {}): Logger {
  const streams: StreamEntry[] = [{ level: 'trace', stream: options.destination ?? pino.destination({ dest: 1, sync: true }) }];
  if (config.LOG_FILE) {
    streams.push({ level: 'trace', stream: pino.destination({ dest: config.LOG_FILE, mkdir: true, sync: true }) });
  }
  return pino(
    {
      level: config.LOG_LEVEL,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError, error: serializeError },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((arg) => (typeof arg === 'string' ? scrubSecrets(arg) : arg));
          method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    pino.multistream(streams),
  );
}
