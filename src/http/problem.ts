import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isDomainError } from '../errors.ts';
import { isLedgerError, type LedgerError } from '../ledger/errors.ts';

/**
 * Every error leaves the API as an RFC 9457 problem details document (application/problem+json)
 * with a stable `code` member that clients branch on; `title` and `detail` are for humans.
 */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

const TITLES: Record<string, string> = {
  validation_failed: 'The request is not valid',
  idempotency_key_missing: 'An Idempotency-Key header is required',
  unauthenticated: 'Authentication required',
  insufficient_funds: 'Insufficient funds',
  forbidden: 'Forbidden',
  csrf_failed: 'CSRF token missing or wrong',
  not_found: 'Not found',
  conflict: 'Conflict',
  idempotency_in_progress: 'A request with this Idempotency-Key is still in progress',
  invalid_state: 'Not possible in the current state',
  cancel_too_early: 'Too early to cancel',
  email_taken: 'Email already registered',
  payload_too_large: 'Request body too large',
  unsupported_media_type: 'Unsupported media type',
  idempotency_key_reused: 'Idempotency-Key reused with a different request',
  unknown_service: 'Unknown service',
  price_exceeds_max: 'Price exceeds the maximum',
  rate_limited: 'Too many requests',
  too_many_active: 'Too many active verifications',
  internal_error: 'Internal server error',
  provider_unavailable: 'Provider unavailable',
  no_numbers: 'No numbers available',
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  [member: string]: unknown;
}

export function problemType(code: string): string {
  return `urn:namaskah:problem:${code}`;
}

export function problem(code: string, status: number, detail: string, extra: Record<string, unknown> = {}): Problem {
  return { ...extra, type: problemType(code), title: TITLES[code] ?? code, status, detail, code };
}

/** The OpenAPI shape of every error response. */
export const ProblemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string().describe('stable machine-readable error code'),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' });

/** Error responses a route may give, for its OpenAPI entry. */
export function problemResponses<const S extends number>(...statuses: S[]): Record<S, typeof ProblemSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ProblemSchema])) as Record<S, typeof ProblemSchema>;
}

export function sendProblem(reply: FastifyReply, body: Problem, headers: Record<string, string> = {}): FastifyReply {
  for (const [name, value] of Object.entries(headers)) reply.header(name, value);
  // Our own serializer: a route's response schema must never reshape (or reject) an error body.
  return reply.status(body.status).type(PROBLEM_CONTENT_TYPE).serializer(JSON.stringify).send(body);
}

const LEDGER_CODES: Record<LedgerError['code'], { code: string; status: number }> = {
  insufficient_funds: { code: 'insufficient_funds', status: 402 },
  idempotency_key_reused: { code: 'idempotency_key_reused', status: 422 },
  unknown_account: { code: 'not_found', status: 404 },
  unknown_hold: { code: 'not_found', status: 404 },
  hold_already_resolved: { code: 'conflict', status: 409 },
};

interface ValidationIssue {
  in: string;
  path: string;
  message: string;
}

function validationIssues(error: FastifyError): ValidationIssue[] {
  const where = error.validationContext ?? 'request';
  return (error.validation ?? []).map((v) => ({
    in: where,
    path: v.instancePath || '/',
    message: v.message ?? 'invalid',
  }));
}

/** Maps anything thrown by a route, hook or fastify itself to a problem; unknown errors are logged, never shown. */
export function errorToProblem(error: unknown, request: FastifyRequest): { body: Problem; headers: Record<string, string> } {
  if (isDomainError(error)) {
    return { body: problem(error.code, error.status, error.message, error.extra), headers: error.headers };
  }
  if (isLedgerError(error)) {
    const mapped = LEDGER_CODES[error.code];
    return { body: problem(mapped.code, mapped.status, error.message), headers: {} };
  }
  const fastifyError = error as FastifyError;
  if (hasZodFastifySchemaValidationErrors(error) || (fastifyError?.validation && fastifyError.validation.length > 0)) {
    const issues = validationIssues(fastifyError);
    const summary = issues.map((i) => `${i.in}${i.path === '/' ? '' : i.path}: ${i.message}`).join('; ');
    return { body: problem('validation_failed', 400, summary || 'the request is not valid', { issues }), headers: {} };
  }
  if (isResponseSerializationError(error)) {
    request.log.error({ err: error, issues: error.cause?.issues }, 'response did not match its schema');
    return internal(request);
  }
  switch (fastifyError?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { body: problem('payload_too_large', 413, 'the request body is larger than this server accepts'), headers: {} };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { body: problem('validation_failed', 400, `the body is not valid JSON: ${fastifyError.message}`), headers: {} };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { body: problem('unsupported_media_type', 415, 'send the body as application/json'), headers: {} };
    default:
      break;
  }
  const status = typeof fastifyError?.statusCode === 'number' ? fastifyError.statusCode : 500;
  if (status >= 400 && status < 500) {
    const code = status === 404 ? 'not_found' : status === 413 ? 'payload_too_large' : status === 429 ? 'rate_limited' : 'validation_failed';
    return { body: problem(code, status === 404 || status === 413 || status === 429 ? status : 400, fastifyError.message), headers: {} };
  }
  request.log.error({ err: error }, 'unexpected error');
  return internal(request);
}

function internal(request: FastifyRequest): { body: Problem; headers: Record<string, string> } {
  return {
    body: problem('internal_error', 500, `an unexpected error occurred; it has been logged (request ${request.id})`, {
      request_id: request.id,
    }),
    headers: {},
  };
}
