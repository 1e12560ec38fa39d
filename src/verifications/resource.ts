import { and, asc, desc, eq, inArray, lt, or, type SQL } from 'drizzle-orm';
import { z } from 'zod';
import { users } from '../accounts/schema.ts';
import { Timestamp } from '../clock.ts';
import type { Executor } from '../db/database.ts';
import { pageOf, type Keyset } from '../db/keyset.ts';
import { NumberOptionsSchema, optionsView } from '../catalogue/number-options.ts';
import { MinorUnits } from '../money.ts';
import { verificationEvents, verificationMessages, verifications, verificationStates, type VerificationState } from './schema.ts';
import { canCancel, isRefunded } from './transitions.ts';

/** A verification row (lifecycle.ts's VerificationRow, named here so the lifecycle can build views without an import cycle). */
type VerificationRow = typeof verifications.$inferSelect;

/**
 * The verification as customers, their scripts and admins see it (docs/api.md): one schema for
 * validation, OpenAPI and the type the reads below build; the dashboard's timeline reads `events`.
 * Reads only: state changes go through lifecycle.ts.
 */
export const VerificationSchema = z
  .object({
    id: z.uuid(),
    service: z.string(),
    country: z.string(),
    state: z.enum(verificationStates),
    parent_id: z.uuid().nullable().describe('for another code on the same number: the verification that bought the number'),
    phone_number: z.string().nullable(),
    price_minor: MinorUnits.describe('what is held, then charged: the offer plus the surcharge of its options'),
    currency: z.string(),
    options: NumberOptionsSchema.describe('area codes, carriers and capability asked for (empty lists: any)'),
    created_at: Timestamp,
    expires_at: Timestamp.describe('the one deadline: countdown, poller and sweeper all use it'),
    code: z.string().nullable(),
    messages: z.array(z.object({ text: z.string(), code: z.string().nullable(), received_at: Timestamp, late: z.boolean() })),
    refunded: z.boolean().describe('the hold was released: the customer paid nothing'),
    can_cancel: z.boolean(),
    events: z.array(
      z.object({ from: z.string().nullable(), to: z.string(), actor: z.string(), reason: z.string().nullable(), at: Timestamp }),
    ),
  })
  .meta({ id: 'Verification' });
export type VerificationView = z.output<typeof VerificationSchema>;

/** A verification as admins search them: with its customer's email. */
export const AdminVerificationSchema = VerificationSchema.extend({ user_email: z.string() }).meta({ id: 'AdminVerification' });
export type AdminVerificationView = z.output<typeof AdminVerificationSchema>;


/** The views of several verifications, with two queries for all their messages and events. */
export async function viewsOf(ex: Executor, list: VerificationRow[]): Promise<VerificationView[]> {
  if (list.length === 0) return [];
  const ids = list.map((r) => r.id);
  const messages = await ex
    .select()
    .from(verificationMessages)
    .where(inArray(verificationMessages.verificationId, ids))
    .orderBy(asc(verificationMessages.receivedAt), asc(verificationMessages.id));
  const events = await ex
    .select()
    .from(verificationEvents)
    .where(inArray(verificationEvents.verificationId, ids))
    .orderBy(asc(verificationEvents.id));
  return list.map((row) =>
    viewFrom(
      row,
      messages.filter((m) => m.verificationId === row.id).map((m) => ({ text: m.text, code: m.code, received_at: m.receivedAt.toISOString(), late: m.late })),
      events
        .filter((e) => e.verificationId === row.id)
        .map((e) => ({ from: e.fromState, to: e.toState, actor: e.actor, reason: e.reason, at: e.createdAt.toISOString() })),
    ),
  );
}

/** A verification's view from its row and its (already viewed) messages and events. */
export function viewFrom(row: VerificationRow, messages: VerificationView['messages'], events: VerificationView['events']): VerificationView {
  return {
    id: row.id,
    service: row.service,
    country: row.country,
    state: row.state,
    parent_id: row.parentId,
    phone_number: row.phoneNumber,
    price_minor: row.priceMinor,
    currency: row.currency,
    options: optionsView(row.numberOptions),
    created_at: row.createdAt.toISOString(),
    expires_at: row.expiresAt.toISOString(),
    code: row.code,
    messages,
    refunded: isRefunded(row.state),
    can_cancel: canCancel(row.state),
    events,
  };
}

export async function viewOf(ex: Executor, row: VerificationRow): Promise<VerificationView> {
  return (await viewsOf(ex, [row]))[0]!;
}

/** One of the customer's verifications; another customer's is simply not found. */
export async function findCustomerVerification(ex: Executor, userId: string, id: string): Promise<VerificationRow | undefined> {
  const [row] = await ex.select().from(verifications).where(and(eq(verifications.id, id), eq(verifications.userId, userId)));
  return row;
}

export interface VerificationFilter {
  userId?: string;
  state?: VerificationState;
  service?: string;
  email?: string;
  after?: Keyset;
  limit: number;
}

/** A page of verifications, newest first, with a cursor for the next page. */
export async function listVerifications(ex: Executor, filter: VerificationFilter): Promise<{ items: AdminVerificationView[]; nextCursor: string | null }> {
  const { after } = filter;
  const conditions: (SQL | undefined)[] = [
    filter.userId ? eq(verifications.userId, filter.userId) : undefined,
    filter.state ? eq(verifications.state, filter.state) : undefined,
    filter.service ? eq(verifications.service, filter.service) : undefined,
    filter.email ? eq(users.email, filter.email.toLowerCase()) : undefined,
    after
      ? or(lt(verifications.createdAt, after.at), and(eq(verifications.createdAt, after.at), lt(verifications.id, after.id)))
      : undefined,
  ];
  const found = await ex
    .select({ row: verifications, email: users.email })
    .from(verifications)
    .innerJoin(users, eq(users.id, verifications.userId))
    .where(and(...conditions))
    .orderBy(desc(verifications.createdAt), desc(verifications.id))
    .limit(filter.limit + 1);
  const page = pageOf(found, filter.limit, (f) => ({ at: f.row.createdAt, id: f.row.id }));
  const views = await viewsOf(
    ex,
    page.items.map((f) => f.row),
  );
  return { items: views.map((v, i) => ({ ...v, user_email: page.items[i]!.email })), nextCursor: page.nextCursor };
}
