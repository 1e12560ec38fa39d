import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import type { Executor } from '../db/database.ts';
import { pageOf, type Keyset } from '../db/keyset.ts';
import { publish, publishMany } from '../events/bus.ts';
import { notifications, type NotificationKind } from './schema.ts';

/**
 * In-app notifications. Written in the same transaction as the transition they announce; the
 * unique (verification, kind) constraint makes "exactly one code notice and one refund notice"
 * a database fact even when a transition is retried.
 */
export interface Notice {
  userId: string;
  verificationId: string | null;
  kind: NotificationKind;
  title: string;
  body: string;
  now: Date;
}

export async function notify(ex: Executor, input: Notice): Promise<void> {
  await notifyMany(ex, [input]);
}

/** notify for many notices in one insert (a batch of transitions); each new one is published. */
export async function notifyMany(ex: Executor, inputs: readonly Notice[]): Promise<void> {
  if (inputs.length === 0) return;
  const inserted = await ex
    .insert(notifications)
    .values(
      inputs.map((input) => ({
        userId: input.userId,
        verificationId: input.verificationId,
        kind: input.kind,
        title: input.title,
        body: input.body,
        createdAt: input.now,
      })),
    )
    .onConflictDoNothing()
    .returning({ id: notifications.id, userId: notifications.userId });
  await publishMany(ex, inserted.map((n) => ({ userId: n.userId, kind: 'notification' as const, id: n.id })));
}

/** An account notice (new sign-in, new API key, password changed): no verification, never deduplicated. */
export async function notifyAccount(ex: Executor, input: { userId: string; title: string; body: string; now: Date }): Promise<void> {
  const [row] = await ex
    .insert(notifications)
    .values({ userId: input.userId, verificationId: null, kind: 'account_security', title: input.title, body: input.body, createdAt: input.now })
    .returning({ id: notifications.id });
  await publish(ex, { userId: input.userId, kind: 'notification', id: row!.id });
}

export type NotificationRow = typeof notifications.$inferSelect;

/** A page of the customer's notifications, newest first, with the count of unread ones. */
export async function listNotifications(ex: Executor, userId: string, options: { limit: number; after?: Keyset }) {
  const { after } = options;
  const found = await ex
    .select()
    .from(notifications)
    .where(
      and(
        eq(notifications.userId, userId),
        after ? sql`(${notifications.createdAt}, ${notifications.id}) < (${after.at}, ${after.id}::uuid)` : undefined,
      ),
    )
    .orderBy(desc(notifications.createdAt), desc(notifications.id))
    .limit(options.limit + 1);
  const page = pageOf(found, options.limit, (n) => ({ at: n.createdAt, id: n.id }));
  const [unread] = await ex
    .select({ n: sql<number>`count(*)::int` })
    .from(notifications)
    .where(and(eq(notifications.userId, userId), isNull(notifications.readAt)));
  return { items: page.items, nextCursor: page.nextCursor, unread: Number(unread?.n ?? 0) };
}

export async function findNotification(ex: Executor, userId: string, id: string): Promise<NotificationRow | undefined> {
  const [row] = await ex.select().from(notifications).where(and(eq(notifications.id, id), eq(notifications.userId, userId)));
  return row;
}

/** Marks one of the customer's notifications read (idempotent); undefined when it is not theirs. */
export async function markRead(ex: Executor, userId: string, id: string, now: Date): Promise<NotificationRow | undefined> {
  const [row] = await ex
    .update(notifications)
    .set({ readAt: sql`coalesce(${notifications.readAt}, ${now})` })
    .where(and(eq(notifications.id, id), eq(notifications.userId, userId)))
    .returning();
  return row;
}
