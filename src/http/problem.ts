import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorTable, isDomainError, type ErrorCode } from '../errors.ts';
import { isLedgerError, type LedgerError } from '../ledger/errors.ts';

/**
 * Every error leaves the API as an RFC 9457 problem details document (application/problem+json)
 * with a stable `code` member that clients branch on; `title` and `detail` are for humans.
 */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

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

/** The problem for `code`: its status and title come from the error table. */
export function problem(code: ErrorCode, detail: string, extra: Record<string, unknown> = {}): Problem {
  const { status, title } = errorTable[code];
  return { ...extra, type: problemType(code), title, status, detail, code };
}

/** The OpenAPI shape of every error response. */
export const ProblemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(Object.keys(errorTable) as [ErrorCode, ...ErrorCode[]]).describe('stable machine-readable error code; GET /v1/errors lists them'),
  })
  .meta({
    id: 'Problem',
    description:
      'RFC 9457 problem details. Some problems carry more members: `issues` (validation), `retry_after_seconds`, `request_id` (500), `verification`.',
  });

/** Error responses a route may give, for its OpenAPI entry. */
export function problemResponses<const S extends number>(...statuses: S[]): Record<S, typeof ProblemSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ProblemSchema])) as Record<S, typeof ProblemSchema>;
}

export function sendProblem(reply: FastifyReply, body: Problem, headers: Record<string, string> = {}): FastifyReply {
  for (const [name, value] of Object.entries(headers)) reply.header(name, value);
  // Our own serializer: a route's response schema must never reshape (or reject) an error body.
  return reply.status(body.status).type(PROBLEM_CONTENT_TYPE).serializer(JSON.stringify).send(body);
}

const LEDGER_CODES: Record<LedgerError['code'], ErrorCode> = {
  insufficient_funds: 'insufficient_funds',
  idempotency_key_reused: 'idempotency_key_reused',
  unknown_account: 'not_found',
  unknown_hold: 'not_found',
  hold_already_resolved: 'conflict',
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
    return { body: problem(error.code, error.message, error.extra), headers: error.headers };
  }
  if (isLedgerError(error)) {
    return { body: problem(LEDGER_CODES[error.code], error.message), headers: {} };
  }
  const fastifyError = error as FastifyError;
  if (hasZodFastifySchemaValidationErrors(error) || (fastifyError?.validation && fastifyError.validation.length > 0)) {
    const issues = validationIssues(fastifyError);
    const summary = issues.map((i) => `${i.in}${i.path === '/' ? '' : i.path}: ${i.message}`).join('; ');
    return { body: problem('validation_failed', summary || 'the request is not valid', { issues }), headers: {} };
  }
  if (isResponseSerializationError(error)) {
    request.log.error({ err: error, issues: error.cause?.issues }, 'response did not match its schema');
    return internal(request);
  }
  switch (fastifyError?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { body: problem('payload_too_large', 'the request body is larger than this server accepts'), headers: {} };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { body: problem('validation_failed', `the body is not valid JSON: ${fastifyError.message}`), headers: {} };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { body: problem('unsupported_media_type', 'send the body as application/json'), headers: {} };
    default:
      break;
  }
  const status = typeof fastifyError?.statusCode === 'number' ? fastifyError.statusCode : 500;
  if (status >= 400 && status < 500) {
    const code = status === 404 ? 'not_found' : status === 413 ? 'payload_too_large' : status === 429 ? 'rate_limited' : 'validation_failed';
    return { body: problem(code, fastifyError.message), headers: {} };
  }
  request.log.error({ err: error }, 'unexpected error');
  return internal(request);
}

function internal(request: FastifyRequest): { body: Problem; headers: Record<string, string> } {
  return {
    body: problem('internal_error', `an unexpected error occurred; it has been logged (request ${request.id})`, {
      request_id: request.id,
    }),
    headers: {},
  };
}
