import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { BusEvent } from '../../events/bus.ts';
import { walletOf } from '../../ledger/ledger.ts';
import { findNotification } from '../../notifications/notifications.ts';
import { findCustomerTopUp, topUpResource } from '../../payments/top-ups.ts';
import { notificationResource } from '../../notifications/resource.ts';
import { findCustomerVerification, viewOf } from '../../verifications/resource.ts';
import { requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { walletResource } from '../../ledger/resource.ts';
import { Security } from '../schemas.ts';

const HEARTBEAT_MS = 15_000;

const EVENTS_DESCRIPTION = [
  'Server-sent events for the signed-in customer, each with the resource as it is now (the same JSON as the REST routes):',
  '',
  '- `ready` — first, once: `{"user_id": "…"}`',
  '- `verification` — a verification changed (number assigned, code arrived, cancelled, expired, failed): a `Verification`',
  '- `notification` — a new in-app notice: a `Notification`',
  '- `wallet` — a wallet movement committed: a `Wallet`',
  '- `top_up` — a top-up changed (pending, credited, failed, expired, review): a `TopUp`',
  '',
  'A `: heartbeat` comment every 15 s keeps proxies from closing the stream; `retry: 3000` asks clients to reconnect after 3 s. ' +
    'Events are not replayed after a reconnect: read the resource (GET /v1/verifications/{id}) to catch up.',
].join('\n');

/**
 * GET /v1/events: server-sent events so a client sees its code arrive without polling. Events are
 * `verification`, `notification`, `wallet` and `top_up`, each carrying the resource's current JSON.
 */
const eventRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, hub } = app;
  // Open streams never end by themselves: on close they are ended here, so close() waits only for
  // requests in flight (clients reconnect after `retry`, to another process or the restarted one).
  const streams = new Set<{ end(): void }>();
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.end();
  });
  app.get('/v1/events', {
    preValidation: requireUser,
    schema: {
      operationId: 'streamEvents',
      tags: ['events'],
      summary: 'Live updates (text/event-stream): verification, notification, wallet and top-up events',
      description: EVENTS_DESCRIPTION,
      security: Security,
      response: problemResponses(401),
      answers: {
        200: {
          description: 'A server-sent event stream that stays open; reconnect (with the same credential) when it ends',
          contentType: 'text/event-stream',
          schema: { type: 'string', description: 'server-sent events, each `event: <type>` and `data: <JSON>`' },
        },
      },
    },
    handler: async (request, reply) => {
      const me = await requireUser(request);
      reply.hijack();
      const out = reply.raw;
      streams.add(out);
      out.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      const send = (event: string, data: unknown) => {
        if (!out.writableEnded) out.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      // Events are delivered in order; each one loads the resource as it is now.
      let queue = Promise.resolve();
      const onEvent = (event: BusEvent) => {
        queue = queue
          .then(async () => {
            const db = ctx.database.db;
            if (event.kind === 'verification') {
              const row = await findCustomerVerification(db, me.userId, event.id);
              if (row) send('verification', await viewOf(db, row));
            } else if (event.kind === 'notification') {
              const row = await findNotification(db, me.userId, event.id);
              if (row) send('notification', notificationResource(row));
            } else if (event.kind === 'top_up') {
              const row = await findCustomerTopUp(db, me.userId, event.id);
              if (row) send('top_up', await topUpResource(db, row));
            } else {
              send('wallet', walletResource(await walletOf(db, me.userId)));
            }
          })
          .catch((error: unknown) => request.log.warn({ err: error }, 'event stream delivery failed'));
      };
      const unsubscribe = hub.subscribe(me.userId, onEvent);
      out.write(`retry: 3000\n\n`);
      send('ready', { user_id: me.userId });
      const heartbeat = setInterval(() => out.write(': heartbeat\n\n'), HEARTBEAT_MS);
      request.raw.on('close', () => {
        clearInterval(heartbeat);
        unsubscribe();
        streams.delete(out);
      });
    },
  });
};

export default eventRoutes;
