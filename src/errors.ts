/**
 * Errors a customer or operator can act on. Each has a stable `code` (the problem-details `code`
 * member) and the HTTP status it maps to; `extra` members are added to the problem body and
 * `headers` (e.g. Retry-After) to the response.
 */
export const errorStatus = {
  validation_failed: 400,
  idempotency_key_missing: 400,
  unauthenticated: 401,
  insufficient_funds: 402,
  forbidden: 403,
  csrf_failed: 403,
  not_found: 404,
  conflict: 409,
  idempotency_in_progress: 409,
  invalid_state: 409,
  cancel_too_early: 409,
  email_taken: 409,
  payload_too_large: 413,
  idempotency_key_reused: 422,
  unknown_service: 422,
  price_exceeds_max: 422,
  rate_limited: 429,
  too_many_active: 429,
  internal_error: 500,
  provider_unavailable: 503,
  no_numbers: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export class DomainError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'DomainError';
    this.status = errorStatus[code];
  }
}

export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError;
}
