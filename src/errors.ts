/**
 * The one table of errors a customer or operator can act on. Each has a stable `code` (the
 * problem-details `code` member), the HTTP status it maps to, the problem's `title`, and what the
 * dashboard tells a customer, which reads this table from GET /v1/errors rather than keeping its
 * own copy.
 */
export interface ErrorEntry {
  status: number;
  title: string;
  /** The sentence a customer is shown. Without one the dashboard shows the answer's `detail`. */
  customer?: string;
  /** Shown instead of `customer` when the answer has a `detail`; `{detail}` is replaced by it. */
  customerWithDetail?: string;
  /** Follows `customer` when the answer names no wait; with a Retry-After it reads "Try again in …". */
  retryHint?: string;
  /** A 5xx with this code says for certain that nothing was done, so nobody was charged. */
  definite?: true;
}

export const errorTable = {
  validation_failed: {
    status: 400,
    title: 'The request is not valid',
    customer: 'Please check the form and try again.',
    customerWithDetail: 'Please check the form: {detail}',
  },
  idempotency_key_missing: {
    status: 400,
    title: 'An Idempotency-Key header is required',
    customer: 'The request was missing its retry key. Please reload the page and try again.',
  },
  link_invalid: {
    status: 400,
    title: 'The link is invalid, used or expired',
    customer: 'This link is invalid, has already been used, or has expired. Ask for a new one.',
  },
  totp_required: {
    status: 401,
    title: 'A two-factor code is required',
    customer: 'Enter the 6-digit code from your authenticator app, or one of your recovery codes.',
  },
  unauthenticated: { status: 401, title: 'Authentication required', customer: 'Your session has ended. Please log in again.' },
  insufficient_funds: { status: 402, title: 'Insufficient funds', customer: 'Not enough balance — top up first.' },
  forbidden: { status: 403, title: 'Forbidden', customer: 'Your account does not have access to this.' },
  csrf_failed: {
    status: 403,
    title: 'CSRF token missing or wrong',
    customer: 'The page lost its security token. Reload the page and try again.',
  },
  email_unverified: {
    status: 403,
    title: 'The email address is not verified yet',
    customer: 'Please verify your email address first: use the link we sent you, or send a new one from your account page.',
  },
  two_factor_required: {
    status: 403,
    title: 'Two-factor sign-in is required for admins',
    customer: 'Admins must turn on two-factor sign-in first (your account page).',
  },
  reauthentication_required: {
    status: 403,
    title: 'A recent sign-in is required',
    customer: 'For your safety, please confirm your password again.',
  },
  not_found: { status: 404, title: 'Not found', customer: 'Not found. It may have been removed, or it belongs to another account.' },
  conflict: { status: 409, title: 'Conflict' },
  idempotency_in_progress: {
    status: 409,
    title: 'A request with this Idempotency-Key is still in progress',
    customer: 'Your previous attempt is still being processed. Please wait a moment.',
  },
  invalid_state: {
    status: 409,
    title: 'Not possible in the current state',
    customer: 'This verification has already moved on, so that is no longer possible.',
  },
  cancel_too_early: {
    status: 409,
    title: 'Too early to cancel',
    customer: 'The provider does not allow cancelling this number yet.',
    retryHint: 'Try again shortly.',
  },
  email_taken: { status: 409, title: 'Email already registered', customer: 'An account with this email already exists. Log in instead.' },
  account_has_funds: {
    status: 409,
    title: 'The account still holds money',
    customer: 'This account still has a balance or money on hold. Spend or withdraw it, and wait for open verifications to end, before deleting the account.',
  },
  payload_too_large: { status: 413, title: 'Request body too large', customer: 'That is too much text for this form. Please shorten it.' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  idempotency_key_reused: {
    status: 422,
    title: 'Idempotency-Key reused with a different request',
    customer: 'That request changed while it was being retried. Please start again.',
  },
  unknown_service: { status: 422, title: 'Unknown service', customer: 'This service is not offered any more. Pick another one.' },
  price_exceeds_max: { status: 422, title: 'Price exceeds the maximum', customer: 'The current price is above your maximum price.' },
  option_not_offered: {
    status: 422,
    title: 'Number option not offered',
    customer: 'That area code, carrier or voice option is not offered for this service. Change or remove it.',
  },
  rate_limited: { status: 429, title: 'Too many requests', customer: 'Too many requests.', retryHint: 'Please wait a moment and try again.' },
  too_many_active: {
    status: 429,
    title: 'Too many active verifications',
    customer: 'You have too many numbers waiting at once. Use or cancel one of them first.',
  },
  internal_error: {
    status: 500,
    title: 'Internal server error',
    customer: 'The server had a problem handling this. Please try again in a moment.',
  },
  provider_unavailable: {
    status: 503,
    title: 'Provider unavailable',
    customer: 'The number provider is not responding right now.',
    retryHint: 'Please try again in a minute.',
    definite: true,
  },
  processor_unavailable: {
    status: 503,
    title: 'Payment processor unavailable',
    customer: 'The payment provider is not responding right now. Nothing was charged.',
    retryHint: 'Please try again in a minute.',
  },
  no_numbers: {
    status: 503,
    title: 'No numbers available',
    customer: 'No numbers are available for this service and country right now. Try another country, or try again in a few minutes.',
    definite: true,
  },
} as const satisfies Record<string, ErrorEntry>;

export type ErrorCode = keyof typeof errorTable;


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
    this.status = errorTable[code].status;
  }
}

export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError;
}
