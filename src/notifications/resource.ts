import { z } from 'zod';
import { Timestamp } from '../clock.ts';
import type { NotificationRow } from './notifications.ts';
import { notificationKinds } from './schema.ts';

/** A notification as the API shows it: schema (validation, OpenAPI) and the one mapping to it. */
export const NotificationSchema = z
  .object({
    id: z.uuid(),
    kind: z.enum(notificationKinds),
    verification_id: z.uuid().nullable(),
    title: z.string(),
    body: z.string(),
    created_at: Timestamp,
    read_at: Timestamp.nullable(),
  })
  .meta({ id: 'Notification' });

export function notificationResource(n: NotificationRow): z.output<typeof NotificationSchema> {
  return {
    id: n.id,
    kind: n.kind,
    verification_id: n.verificationId,
    title: n.title,
    body: n.body,
    created_at: n.createdAt.toISOString(),
    read_at: n.readAt ? n.readAt.toISOString() : null,
  };
}
