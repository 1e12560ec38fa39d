import { requireVerifiedEmail } from '../accounts/flows.ts';
import { and, desc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { Timestamp } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Database, Executor } from '../db/database.ts';
import { pageOf, type Keyset } from '../db/keyset.ts';
import { DomainError } from '../errors.ts';
import { publish } from '../events/bus.ts';
import { MinorUnits } from '../money.ts';
import { decideReplay, fingerprint } from '../verifications/idempotency.ts';
import { topUpAmountProblem } from './decisions.ts';
import type { PaymentProcessors } from './processor.ts';
import { processorNames, topUpReversals, topUps, topUpStatuses, type ProcessorName, type TopUpRow } from './schema.ts';

export interface PaymentDeps {
  database: Database;
  clock: Clock;
  config: Config;
  processors: PaymentProcessors;
  logger: Logger;
}

export interface TopUpRequest {
  userId: string;
  customerEmail: string;
  idempotencyKey: string;
  amountMinor: number;
  processor?: string;
  /** Where this server is reached (PUBLIC_URL, else the request's origin). */
  publicUrl: string;
}

/** How long a checkout may be in the making before a retry with the same key makes it again. */
const CHECKOUT_IN_FLIGHT_MS = 30_000;

/**
 * Starts a top-up, in three phases like a purchase: (1) one transaction stores it as pending, or
 * finds the one this Idempotency-Key made (same rules as purchases: the same body replays, another
 * body is 422, one still being made is 409); (2) the processor's checkout is opened outside any
 * transaction, keyed by the top-up's id so a retry opens the same one; (3) its reference and URL are
 * stored. No money moves here: only the processor's confirmation credits.
 */
export async function createTopUp(deps: PaymentDeps, request: TopUpRequest): Promise<{ row: TopUpRow; replayed: boolean }> {
  const { config } = deps;
  const name = (request.processor ?? config.PAYMENT_PROCESSORS[0]) as ProcessorName;
  const processor = deps.processors.get(name);
  if (!processor) {
    throw new DomainError('validation_failed', `processor: must be one of ${[...deps.processors.keys()].join(', ')}`, { field: 'processor' });
  }
  const amountProblem = topUpAmountProblem(request.amountMinor, { min: config.TOP_UP_MIN_MINOR, max: config.TOP_UP_MAX_MINOR });
  if (amountProblem) throw new DomainError('validation_failed', amountProblem, { field: 'amount_minor' });
  await requireVerifiedEmail(deps.database.db, config, request.userId, 'top_up');
  const print = fingerprint({ amount_minor: request.amountMinor, processor: name });

  const begun = await deps.database.transaction(async (tx) => {
    const now = deps.clock.now();
    const inserted = await tx
      .insert(topUps)
      .values({
        userId: request.userId,
        processor: name,
        amountMinor: request.amountMinor,
        currency: config.CURRENCY,
        idempotencyKey: request.idempotencyKey,
        fingerprint: print,
        createdAt: now,
        updatedAt: now,
      })
      .onConflictDoNothing({ target: [topUps.userId, topUps.idempotencyKey] })
      .returning();
    if (inserted[0]) return { row: inserted[0], replayed: false };
    const [existing] = await tx
      .select()
      .from(topUps)
      .where(and(eq(topUps.userId, request.userId), eq(topUps.idempotencyKey, request.idempotencyKey)));
    return { row: existing!, replayed: true };
  });

  let { row } = begun;
  if (begun.replayed) {
    const now = deps.clock.now();
    const decision = decideReplay(
      {
        fingerprint: row.fingerprint,
        state: row.checkoutUrl ? 'ready' : 'pending',
        responseStatus: row.checkoutUrl ? 201 : null,
        purchaseUntil: new Date(row.updatedAt.getTime() + CHECKOUT_IN_FLIGHT_MS),
      },
      print,
      now,
    );
    if (decision.kind === 'mismatch') throw new DomainError('idempotency_key_reused', 'this Idempotency-Key was used for another top-up');
    if (decision.kind === 'in_progress') {
      throw new DomainError('idempotency_in_progress', 'the checkout for this key is still being opened', {}, {
        'retry-after': String(decision.retryAfterSeconds),
      });
    }
    // A checkout whose making was interrupted (a crash, a processor error) is made again: the
    // processor's own idempotency (our top-up id) returns the same checkout if it exists.
    if (row.checkoutUrl || row.status !== 'pending') return { row, replayed: true };
  }

  let checkout;
  try {
    checkout = await processor.createCheckout({
      topUpId: row.id,
      amountMinor: row.amountMinor,
      currency: row.currency,
      customerEmail: request.customerEmail,
      returnUrl: new URL(`/#/top-ups/${row.id}`, request.publicUrl).toString(),
      publicUrl: request.publicUrl,
    });
  } catch (error) {
    deps.logger.warn({ err: error, processor: name, topUp: row.id }, 'the processor could not open a checkout');
    throw new DomainError('processor_unavailable', `${name} could not open a checkout; nothing was charged, retry with the same Idempotency-Key`, {
      top_up_id: row.id,
    });
  }
  row = await deps.database.transaction(async (tx) => {
    const [updated] = await tx
      .update(topUps)
      .set({ processorReference: checkout.reference, checkoutUrl: checkout.checkoutUrl, updatedAt: deps.clock.now() })
      .where(eq(topUps.id, row.id))
      .returning();
    await publish(tx, { userId: row.userId, kind: 'top_up', id: row.id });
    return updated!;
  });
  return { row, replayed: begun.replayed };
}

export async function findCustomerTopUp(ex: Executor, userId: string, id: string): Promise<TopUpRow | undefined> {
  const [row] = await ex.select().from(topUps).where(and(eq(topUps.id, id), eq(topUps.userId, userId)));
  return row;
}

export async function findTopUp(ex: Executor, id: string): Promise<TopUpRow | undefined> {
  const [row] = await ex.select().from(topUps).where(eq(topUps.id, id));
  return row;
}

export async function listTopUps(ex: Executor, userId: string, options: { after?: Keyset; limit: number }) {
  const before = options.after ? sql`(${topUps.createdAt}, ${topUps.id}) < (${options.after.at}, ${options.after.id}::uuid)` : sql`true`;
  const found = await ex
    .select()
    .from(topUps)
    .where(and(eq(topUps.userId, userId), before))
    .orderBy(desc(topUps.createdAt), desc(topUps.id))
    .limit(options.limit + 1);
  return pageOf(found, options.limit, (r) => ({ at: r.createdAt, id: r.id }));
}

export const TopUpSchema = z
  .object({
    id: z.uuid(),
    status: z.enum(topUpStatuses).describe('pending until the processor confirms; credited once, ever'),
    processor: z.enum(processorNames),
    amount_minor: MinorUnits,
    currency: z.string().length(3),
    checkout_url: z.string().nullable().describe('where the customer pays; null while it is being opened'),
    credited_minor: MinorUnits.nullable(),
    reversed_minor: MinorUnits.describe('taken back by the processor (refunds, lost disputes)'),
    status_reason: z.string().nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
    credited_at: Timestamp.nullable(),
  })
  .meta({ id: 'TopUp' });
export type TopUpResource = z.output<typeof TopUpSchema>;

export async function topUpResources(ex: Executor, rows: TopUpRow[]): Promise<TopUpResource[]> {
  const reversed = new Map<string, number>();
  if (rows.length > 0) {
    const sums = await ex
      .select({ topUpId: topUpReversals.topUpId, total: sql<string>`sum(${topUpReversals.amountMinor})` })
      .from(topUpReversals)
      .where(sql`${topUpReversals.topUpId} IN (${sql.join(rows.map((r) => sql`${r.id}::uuid`), sql`, `)})`)
      .groupBy(topUpReversals.topUpId);
    for (const s of sums) reversed.set(s.topUpId, Number(s.total));
  }
  return rows.map((row) => ({
    id: row.id,
    status: row.status,
    processor: row.processor,
    amount_minor: row.amountMinor,
    currency: row.currency,
    checkout_url: row.status === 'pending' ? row.checkoutUrl : null,
    credited_minor: row.creditedMinor,
    reversed_minor: reversed.get(row.id) ?? 0,
    status_reason: row.statusReason,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    credited_at: row.creditedAt?.toISOString() ?? null,
  }));
}

export async function topUpResource(ex: Executor, row: TopUpRow): Promise<TopUpResource> {
  return (await topUpResources(ex, [row]))[0]!;
}
