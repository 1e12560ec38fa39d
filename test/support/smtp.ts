import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** A message as the SMTP server received it, parsed from the raw bytes. */
export interface ReceivedMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  parsed: ParsedMail;
}

export interface TestSmtpServer {
  /** smtp://127.0.0.1:<port>, for SMTP_URL. */
  url: string;
  received: ReceivedMail[];
  /** The first message to `to` (and matching `subject`) beyond the first `after` ones; waits for it to arrive. */
  waitFor(to: string, subject?: RegExp, options?: { after?: number }): Promise<ReceivedMail>;
  close(): Promise<void>;
}

/**
 * A real SMTP server in the test process (the `smtp-server` package), speaking the wire protocol
 * to nodemailer; every message is parsed with mailparser, as a mail client would read it.
 */
export async function startSmtpServer(): Promise<TestSmtpServer> {
  const received: ReceivedMail[] = [];
  const waiters = new Set<() => void>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((parsed) => {
          received.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            parsed,
          });
          for (const wake of waiters) wake();
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;

  function find(to: string, subject: RegExp | undefined, after: number): ReceivedMail | undefined {
    return received.filter((m) => m.to.includes(to) && (!subject || subject.test(m.subject)))[after];
  }

  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    waitFor(to, subject, options = {}) {
      const after = options.after ?? 0;
      return new Promise((resolve) => {
        const check = () => {
          const found = find(to, subject, after);
          if (!found) return;
          waiters.delete(check);
          resolve(found);
        };
        waiters.add(check);
        check();
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The token of a dashboard link (#/verify-email?token=…) in a mail's text. */
export function linkToken(mail: ReceivedMail, route: 'verify-email' | 'reset-password'): { link: string; token: string } {
  const match = new RegExp(`(https?://\\S+/#/${route}\\?token=([A-Za-z0-9_%-]+))`).exec(mail.text);
  if (!match) throw new Error(`no ${route} link in: ${mail.text}`);
  return { link: match[1]!, token: decodeURIComponent(match[2]!) };
}
