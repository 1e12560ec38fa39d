/**
 * What every client was told: one record per HTTP request the soak's customers sent, kept for the
 * oracle, which compares them with the final rows. `status` is 'error' when no answer came (the
 * API process was killed with the request in flight, or the request timed out).
 */
export type Status = number | 'error';

export interface AnswerBase {
  userId: string;
  /** Wall-clock milliseconds: when the request was sent and when its answer was read. */
  sentAt: number;
  doneAt: number;
  status: Status;
  /** The problem-details `code` of an error answer. */
  code?: string;
  /** The verification the answer names (its body, or the problem's verification_id / verification). */
  verificationId?: string;
  /** The state of that verification as the answer showed it. */
  state?: string;
}

/**
 * first: the purchase as first sent; duplicate: an identical copy sent at the same time; later: an
 * identical replay sent seconds after; mismatch: the same key with a different body.
 */
export type PurchaseVariant = 'first' | 'duplicate' | 'later' | 'mismatch';

export interface PurchaseAnswer extends AnswerBase {
  kind: 'purchase';
  key: string;
  service: string;
  variant: PurchaseVariant;
  expiresAt?: number;
}

export interface CancelAnswer extends AnswerBase {
  kind: 'cancel';
  verificationId: string;
  /** Cancels sent together for one verification share a group. */
  group: number;
}

export interface SmsAnswer extends AnswerBase {
  kind: 'sms';
  verificationId: string;
  /** The verification's deadline as its purchase answer gave it. */
  expiresAt: number;
}

export type Answer = PurchaseAnswer | CancelAnswer | SmsAnswer;

export interface HttpResult {
  status: Status;
  body: Record<string, unknown> | undefined;
  error?: string;
}

const REQUEST_TIMEOUT_MS = 60_000;

/** One JSON request with a customer's API key; never throws. */
export async function send(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  options: { apiKey: string; idempotencyKey?: string; body?: unknown },
): Promise<HttpResult> {
  const headers: Record<string, string> = { authorization: `Bearer ${options.apiKey}` };
  if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  try {
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    let body: Record<string, unknown> | undefined;
    try {
      body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    } catch {
      body = { unparsed: text.slice(0, 500) };
    }
    return { status: response.status, body };
  } catch (error) {
    return { status: 'error', body: undefined, error: error instanceof Error ? error.message : String(error) };
  }
}

/** The problem-details `code` of an error answer (a verification's own `code` is its SMS code). */
export function problemCode(result: HttpResult): string | undefined {
  return typeof result.status === 'number' && result.status >= 400 && typeof result.body?.code === 'string' ? result.body.code : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The verification an answer names and the state it showed, whichever shape the answer has. */
export function namedVerification(body: Record<string, unknown> | undefined): { id?: string; state?: string; expiresAt?: number } {
  if (!body) return {};
  const nested = body.verification && typeof body.verification === 'object' ? (body.verification as Record<string, unknown>) : undefined;
  const view = typeof body.id === 'string' && typeof body.state === 'string' ? body : nested;
  const expires = text(view?.expires_at);
  return {
    id: text(view?.id) ?? text(body.verification_id),
    state: text(view?.state),
    expiresAt: expires ? Date.parse(expires) : undefined,
  };
}
