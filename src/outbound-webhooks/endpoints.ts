import { randomBytes } from 'node:crypto';
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { checkTarget, parseWebhookUrl, RefusedUrlError, type AddressRules, type ResolveHost } from './address-policy.ts';
import { webhookEndpoints, type OutboundEventType, type WebhookEndpointRow } from './schema.ts';

/**
 * Customers' webhook endpoints (POST/GET/PATCH/DELETE /v1/webhook-endpoints). The signing secret
 * is in the answer that creates or rotates it and never again; it is kept in clear because every
 * delivery signs with it (HMAC needs the key itself, unlike an API key, which is only compared).
 */

/** Bounded so one account cannot fan every event out to thousands of receivers. */
export const MAX_ENDPOINTS_PER_USER = 20;

export interface EndpointInput {
  url: string;
  events: OutboundEventType[];
  description?: string | null;
  enabled?: boolean;
}

export interface EndpointChecks {
  rules: AddressRules;
  resolve: ResolveHost;
}

/** A Standard Webhooks secret: `whsec_` and 32 random bytes in base64. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The URL rules at save time, as a 400 naming the field. */
async function acceptedUrl(raw: string, checks: EndpointChecks): Promise<string> {
  try {
    const url = parseWebhookUrl(raw, checks.rules);
    await checkTarget(url, checks.rules, checks.resolve, 'accept');
    return url.toString();
  } catch (error) {
    if (!(error instanceof RefusedUrlError)) throw error;
    throw new DomainError('validation_failed', `body/url: ${error.message}`, { issues: [{ in: 'body', path: '/url', message: error.message }] });
  }
}

export async function createEndpoint(
  ex: Executor,
  userId: string,
  input: EndpointInput,
  checks: EndpointChecks,
  now: Date,
): Promise<{ endpoint: WebhookEndpointRow; secret: string }> {
  const url = await acceptedUrl(input.url, checks);
  const [count] = await ex
    .select({ n: sql<number>`count(*)::int` })
    .from(webhookEndpoints)
    .where(eq(webhookEndpoints.userId, userId));
  if ((count?.n ?? 0) >= MAX_ENDPOINTS_PER_USER) {
    throw new DomainError('conflict', `at most ${MAX_ENDPOINTS_PER_USER} webhook endpoints; delete one first`);
  }
  const secret = newSigningSecret();
  const [endpoint] = await ex
    .insert(webhookEndpoints)
    .values({
      userId,
      url,
      events: [...new Set(input.events)],
      description: input.description ?? null,
      enabled: input.enabled ?? true,
      secret,
      createdAt: now,
      updatedAt: now,
    })
    .returning();
  return { endpoint: endpoint!, secret };
}

export async function listEndpoints(ex: Executor, userId: string): Promise<WebhookEndpointRow[]> {
  return ex.select().from(webhookEndpoints).where(eq(webhookEndpoints.userId, userId)).orderBy(asc(webhookEndpoints.createdAt), asc(webhookEndpoints.id));
}

/** One of the customer's endpoints; another customer's is not found. */
export async function findEndpoint(ex: Executor, userId: string, id: string): Promise<WebhookEndpointRow> {
  const [row] = await ex.select().from(webhookEndpoints).where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.userId, userId)));
  if (!row) throw new DomainError('not_found', 'no such webhook endpoint');
  return row;
}

export async function updateEndpoint(
  ex: Executor,
  userId: string,
  id: string,
  patch: Partial<EndpointInput>,
  checks: EndpointChecks,
  now: Date,
): Promise<WebhookEndpointRow> {
  await findEndpoint(ex, userId, id);
  const url = patch.url === undefined ? undefined : await acceptedUrl(patch.url, checks);
  const [row] = await ex
    .update(webhookEndpoints)
    .set({
      url,
      events: patch.events ? [...new Set(patch.events)] : undefined,
      description: patch.description,
      enabled: patch.enabled,
      // Enabled again by its owner: the failure streak that disabled it starts over.
      ...(patch.enabled === true ? { disabledReason: null, failingSince: null } : {}),
      ...(patch.enabled === false ? { disabledReason: null } : {}),
      updatedAt: now,
    })
    .where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.userId, userId)))
    .returning();
  if (!row) throw new DomainError('not_found', 'no such webhook endpoint');
  return row;
}

/** Deletes an endpoint with its deliveries and attempts; the events stay (other endpoints may have them). */
export async function deleteEndpoint(ex: Executor, userId: string, id: string): Promise<void> {
  const deleted = await ex
    .delete(webhookEndpoints)
    .where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.userId, userId)))
    .returning({ id: webhookEndpoints.id });
  if (deleted.length === 0) throw new DomainError('not_found', 'no such webhook endpoint');
}

/**
 * A new signing secret. Until `now + overlap` the previous secret signs too (both signatures are
 * sent), so a receiver can switch to the new one without missing an event.
 */
export async function rotateSecret(
  ex: Executor,
  userId: string,
  id: string,
  overlapSeconds: number,
  now: Date,
): Promise<{ endpoint: WebhookEndpointRow; secret: string }> {
  const current = await findEndpoint(ex, userId, id);
  const secret = newSigningSecret();
  const until = new Date(now.getTime() + overlapSeconds * 1000);
  const [row] = await ex
    .update(webhookEndpoints)
    .set(
      overlapSeconds > 0
        ? { secret, previousSecret: current.secret, previousSecretUntil: until, updatedAt: now }
        : { secret, previousSecret: null, previousSecretUntil: null, updatedAt: now },
    )
    .where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.userId, userId), eq(webhookEndpoints.secret, current.secret)))
    .returning();
  if (!row) throw new DomainError('conflict', 'the secret was rotated at the same time; try again');
  return { endpoint: row, secret };
}

/** The secrets that sign at `now`: the current one, and the previous one during its overlap window. */
export function signingSecrets(endpoint: Pick<WebhookEndpointRow, 'secret' | 'previousSecret' | 'previousSecretUntil'>, now: Date): string[] {
  const previousValid = endpoint.previousSecret && endpoint.previousSecretUntil && now < endpoint.previousSecretUntil;
  return previousValid ? [endpoint.secret, endpoint.previousSecret!] : [endpoint.secret];
}
