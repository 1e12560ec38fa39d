// Turning failures into sentences a customer can act on. Keyed by the problem-details `code`.
import { ApiError, NetworkError } from './api.js';
import { formatWait } from './format.js';

function wait(error, fallback) {
  return error.retryAfterSeconds ? ` Try again in ${formatWait(error.retryAfterSeconds)}.` : fallback;
}

/** One sentence (or two) for any error thrown by api.js. */
export function describeError(error) {
  if (error instanceof NetworkError) {
    return 'Could not reach Namaskah. Check your connection and try again.';
  }
  if (!(error instanceof ApiError)) {
    return 'Something went wrong in the page. Please reload and try again.';
  }
  const detail = error.problem?.detail;
  switch (error.code) {
    case 'insufficient_funds':
      return 'Not enough balance — top up first.';
    case 'no_numbers':
      return 'No numbers are available for this service and country right now. Try another country, or try again in a few minutes.';
    case 'provider_unavailable':
      return `The number provider is not responding right now.${wait(error, ' Please try again in a minute.')}`;
    case 'price_exceeds_max':
      return 'The current price is above your maximum price.';
    case 'too_many_active':
      return 'You have too many numbers waiting at once. Use or cancel one of them first.';
    case 'rate_limited':
      return `Too many requests.${wait(error, ' Please wait a moment and try again.')}`;
    case 'invalid_state':
      return 'This verification has already moved on, so that is no longer possible.';
    case 'cancel_too_early':
      return `The provider does not allow cancelling this number yet.${wait(error, ' Try again shortly.')}`;
    case 'validation_failed':
      return detail ? `Please check the form: ${detail}` : 'Please check the form and try again.';
    case 'unauthenticated':
      return 'Your session has ended. Please log in again.';
    case 'csrf_failed':
      return 'The page lost its security token. Reload the page and try again.';
    case 'email_taken':
      return 'An account with this email already exists. Log in instead.';
    case 'payload_too_large':
      return 'That is too much text for this form. Please shorten it.';
    case 'forbidden':
      return 'Your account does not have access to this.';
    case 'not_found':
      return 'Not found. It may have been removed, or it belongs to another account.';
    case 'unknown_service':
      return 'This service is not offered any more. Pick another one.';
    case 'idempotency_in_progress':
      return 'Your previous attempt is still being processed. Please wait a moment.';
    case 'idempotency_key_reused':
      return 'That request changed while it was being retried. Please start again.';
    case 'idempotency_key_missing':
      return 'The request was missing its retry key. Please reload the page and try again.';
    default:
      if (error.status >= 500) return 'The server had a problem handling this. Please try again in a moment.';
      return detail || error.problem?.title || `The request failed (${error.status}).`;
  }
}

/** Codes that say for certain the request did nothing (the provider refused, nothing was bought). */
const DEFINITE_5XX = new Set(['provider_unavailable', 'no_numbers']);

/**
 * Did the request possibly take effect without us hearing the answer? Then a retry must reuse the
 * same Idempotency-Key, and we must not claim the customer was not charged.
 */
export function outcomeUnknown(error) {
  if (error instanceof NetworkError) return true;
  return error instanceof ApiError && error.status >= 500 && !DEFINITE_5XX.has(error.code);
}

/**
 * A failed purchase: always say whether money was taken. Every definite failure releases the
 * hold (or never placed it), so the customer was not charged; only a lost answer is uncertain,
 * and retrying with the same key is then safe.
 */
export function describePurchaseError(error) {
  if (outcomeUnknown(error)) {
    return `${describeError(error)} If the purchase went through, pressing Buy again shows it — you will never be charged twice.`;
  }
  return `${describeError(error)} You were not charged.`;
}

/** A 404 for the route itself (an endpoint this server does not have yet), not for a resource. */
export function isRouteMissing(error) {
  return error instanceof ApiError && error.status === 404 && (!error.problem?.detail || /^no route/i.test(error.problem.detail));
}
