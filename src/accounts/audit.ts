import type { Executor } from '../db/database.ts';
import { auditLog } from './schema.ts';

export interface AuditEntry {
  /** The user who acted, when a user did (null for the CLI operator or the system itself). */
  actorId: string | null;
  actor: 'admin' | 'cli' | 'system' | 'customer';
  action: string;
  subjectId: string | null;
  detail: Record<string, unknown>;
  now: Date;
}

/** Records an admin action or a change to an account's security. Always called with the transaction that makes the change it describes. */
export async function recordAudit(ex: Executor, entry: AuditEntry): Promise<void> {
  await ex.insert(auditLog).values({
    actorId: entry.actorId,
    actor: entry.actor,
    action: entry.action,
    subjectId: entry.subjectId,
    detail: entry.detail,
    createdAt: entry.now,
  });
}
