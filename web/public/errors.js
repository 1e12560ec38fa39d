// Turning failures into sentences a customer can act on. Keyed by the problem-details `code`.
import { ApiError, NetworkError } from './api.js';
import { formatWait } from './format.js';

/**
 * The server's error table (GET /v1/errors): for each problem `code`, the sentence a customer is
 * shown. Loaded once, before any page renders. Without it (server unreachable at load) errors
 * still read sensibly: the answer's own detail is shown.
 */
async function loadErrorTable() {
  try {
    const response = await fetch('/v1/errors', { headers: { Accept: 'application/json' }, signal: AbortSignal.timeout(5000) });
    if (!response.ok) return new Map();
    const { errors } = await response.json();
    return new Map(errors.map((entry) => [entry.code, entry]));
  } catch {
    return new Map();
  }
}

const errorTable = await loadErrorTable();

/** One sentence (or two) for any error thrown by api.js. */
export function describeError(error) {
  if (error instanceof NetworkError) {
    return 'Could not reach Namaskah. Check your connection and try again.';
  }
  if (!(error instanceof ApiError)) {
    return 'Something went wrong in the page. Please reload and try again.';
  }
  const detail = error.problem?.detail;
  // An answer with no known code from 500 up (a proxy's 502, say) reads like the server's own 500.
  const entry = errorTable.get(error.code) ?? (error.status >= 500 ? errorTable.get('internal_error') : undefined);
  if (entry?.customer_message) {
    if (detail && entry.customer_message_with_detail) return entry.customer_message_with_detail.replace('{detail}', detail);
    if (error.retryAfterSeconds && entry.retry_hint) return `${entry.customer_message} Try again in ${formatWait(error.retryAfterSeconds)}.`;
    return entry.retry_hint ? `${entry.customer_message} ${entry.retry_hint}` : entry.customer_message;
  }
  return detail || error.problem?.title || `The request failed (${error.status}).`;
}

/**
 * Did the request possibly take effect without us hearing the answer? Then a retry must reuse the
 * same Idempotency-Key, and we must not claim the customer was not charged.
 */
export function outcomeUnknown(error) {
  if (error instanceof NetworkError) return true;
  // Only the table's "definite" codes say for certain that nothing was done (nothing was bought).
  return error instanceof ApiError && error.status >= 500 && !errorTable.get(error.code)?.definite;
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
