import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError } from '../errors.ts';

/**
 * Text PostgreSQL cannot store: a NUL character (U+0000), refused in text, and an unpaired UTF-16
 * surrogate, which JSON keeps as a `\ud800` escape that jsonb refuses. Either one reaching a
 * statement fails it (a 500) wherever it goes, so no request carrying one reaches a route: every
 * string the server reads — path parameters, query string, headers, cookies, the JSON body (values
 * and keys, at any depth) — is checked once, here, before validation. The answer is 400
 * `validation_failed` naming the field.
 */
export interface UnstorableField {
  /** Where, in the same words as the schema validation's issues: body, querystring, params, headers, cookies. */
  in: string;
  /** JSON Pointer to the field ("/" for the whole part). */
  path: string;
  message: string;
}

const NUL = '\u0000';
// Without the u flag the pattern sees UTF-16 code units: a high surrogate not followed by a low one, or a low one alone.
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const NUL_MESSAGE = 'must not contain a NUL character (U+0000)';
const SURROGATE_MESSAGE = 'must be valid Unicode: it contains an unpaired surrogate (U+D800-U+DFFF)';

function problemOf(text: string): string | undefined {
  if (text.includes(NUL)) return NUL_MESSAGE;
  if (text.search(UNPAIRED_SURROGATE) >= 0) return SURROGATE_MESSAGE;
  return undefined;
}

/** A key as a JSON Pointer segment, printable even when the key is what is wrong with it. */
function pointerSegment(key: string): string {
  return key
    .replaceAll('~', '~0')
    .replaceAll('/', '~1')
    .replaceAll(NUL, '\\u0000')
    .replace(UNPAIRED_SURROGATE, (unit) => `\\u${unit.charCodeAt(0).toString(16)}`);
}

/** The first unstorable string of a parsed value (a value or an object key); iterative, so any depth is safe. */
export function findUnstorable(value: unknown): { path: string; message: string } | undefined {
  const pending: { value: unknown; path: string }[] = [{ value, path: '' }];
  while (pending.length > 0) {
    const { value: current, path } = pending.pop()!;
    if (typeof current === 'string') {
      const message = problemOf(current);
      if (message) return { path: path || '/', message };
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) pending.push({ value: current[i], path: `${path}/${i}` });
    } else if (current !== null && typeof current === 'object') {
      const entries = Object.entries(current);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        const childPath = `${path}/${pointerSegment(key)}`;
        const message = problemOf(key);
        if (message) return { path: childPath, message };
        pending.push({ value: child, path: childPath });
      }
    }
  }
  return undefined;
}

/** A body a route keeps as raw bytes (signed webhooks) is checked as the JSON it will be parsed into. */
function parsedForCheck(body: unknown): unknown {
  if (!Buffer.isBuffer(body)) return body;
  if (body.includes(0)) return NUL;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    // Not JSON: the route refuses it on its own terms.
    return undefined;
  }
}

export function unstorableFieldOf(request: FastifyRequest): UnstorableField | undefined {
  const parts: [string, unknown][] = [
    ['params', request.params],
    ['querystring', request.query],
    ['headers', request.headers],
    ['cookies', request.cookies],
    ['body', parsedForCheck(request.body)],
  ];
  for (const [where, value] of parts) {
    const found = findUnstorable(value);
    if (found) return { in: where, ...found };
  }
  return undefined;
}

export function installInputGuard(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    const field = unstorableFieldOf(request);
    if (!field) return;
    throw new DomainError('validation_failed', `${field.in}${field.path === '/' ? '' : field.path}: ${field.message}`, {
      issues: [field],
    });
  });
}
