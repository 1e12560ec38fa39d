import { desc, eq, sql, and } from 'drizzle-orm';
import { createRequire } from 'node:module';
import type { Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Database, Executor } from '../db/database.ts';
import { pageOf, type Keyset } from '../db/keyset.ts';
import { mailOutbox } from './schema.ts';

/** One plain-text message to one person. */
export interface Mail {
  to: string;
  subject: string;
  text: string;
}

/**
 * Outgoing mail: over SMTP (nodemailer) when SMTP_URL is set, otherwise into the local outbox table,
 * which the admin reads in the dashboard and the operator prints with `namaskah mail`, so every
 * account flow works with `npm start` alone.
 *
 * Mail is sent after the request has answered (`dispatch`): whether a message goes out (an address
 * has an account or not) must not show in how long the answer takes, and an SMTP server that is
 * slow or down must not fail a sign-up. A message's text carries single-use links: it is never
 * logged, only its recipient and subject are.
 */
export interface Mailer {
  /** `smtp` or `outbox`. */
  readonly transport: 'smtp' | 'outbox';
  /** Sends now; a failure is logged (never the text) and swallowed. */
  send(mail: Mail): Promise<void>;
  /** Runs work that ends in mail after the answer; close() waits for it. */
  dispatch(work: () => Promise<void>): void;
  /** Resolves when every dispatched piece of work has finished (tests, shutdown). */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export function createMailer(
  config: Pick<Config, 'SMTP_URL' | 'MAIL_FROM'>,
  deps: { database: Database; clock: Clock; logger: Logger },
): Mailer {
  const log = deps.logger.child({ component: 'mail' });
  let transporter: Transporter | undefined;
  // Loaded only when mail goes out through SMTP: without it the library would sit in every server.
  if (config.SMTP_URL) transporter = (createRequire(import.meta.url)('nodemailer') as typeof import('nodemailer')).createTransport(config.SMTP_URL);
  const pending = new Set<Promise<void>>();

  async function send(mail: Mail): Promise<void> {
    try {
      if (transporter) {
        await transporter.sendMail({ from: config.MAIL_FROM, to: mail.to, subject: mail.subject, text: mail.text });
        log.info({ to: mail.to, subject: mail.subject }, 'mail sent');
      } else {
        await deps.database.db
          .insert(mailOutbox)
          .values({ recipient: mail.to, subject: mail.subject, body: mail.text, createdAt: deps.clock.now() });
        log.info({ to: mail.to, subject: mail.subject }, 'mail kept in the local outbox (no SMTP_URL)');
      }
    } catch (error) {
      // The message itself may carry a link with a token: only what failed is logged.
      log.error({ to: mail.to, subject: mail.subject, reason: (error as Error).message }, 'mail could not be sent');
    }
  }

  return {
    transport: transporter ? 'smtp' : 'outbox',
    send,
    dispatch(work) {
      const running: Promise<void> = work()
        .catch((error: unknown) => log.error({ reason: (error as Error).message }, 'mail work failed'))
        .finally(() => pending.delete(running));
      pending.add(running);
    },
    async settled() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
    async close() {
      await this.settled();
      transporter?.close();
    },
  };
}

export type OutboxMail = typeof mailOutbox.$inferSelect;

/** The outbox, newest first, optionally only what was sent to one address. */
export async function listOutbox(
  ex: Executor,
  options: { recipient?: string; after?: Keyset; limit: number },
): Promise<{ items: OutboxMail[]; nextCursor: string | null }> {
  const { after } = options;
  const found = await ex
    .select()
    .from(mailOutbox)
    .where(
      and(
        options.recipient ? eq(mailOutbox.recipient, options.recipient) : undefined,
        after ? sql`(${mailOutbox.createdAt}, ${mailOutbox.id}) < (${after.at}, ${after.id}::uuid)` : undefined,
      ),
    )
    .orderBy(desc(mailOutbox.createdAt), desc(mailOutbox.id))
    .limit(options.limit + 1);
  return pageOf(found, options.limit, (m) => ({ at: m.createdAt, id: m.id }));
}

/** A deleted account's mail goes with it: the outbox is a convenience, not a record. */
export async function forgetOutboxMail(ex: Executor, recipient: string): Promise<void> {
  await ex.delete(mailOutbox).where(eq(mailOutbox.recipient, recipient));
}
