import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.ts';
import type { VerificationRuntime } from '../verifications/runtime.ts';
import { adminOpsRoutes } from './routes/admin-ops.ts';
import adminVerificationRoutes from './routes/admin-verifications.ts';
import { eventRoutes } from './routes/events.ts';
import notificationRoutes from './routes/notifications.ts';
import { sandboxRoutes } from './routes/sandbox.ts';
import { serviceRoutes } from './routes/services.ts';
import { verificationRoutes } from './routes/verifications.ts';
import { webhookRoutes } from './routes/webhooks.ts';

/** The routes that need the verification runtime (provider, engine, live events). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function lifecycleRoutes(runtime: VerificationRuntime, config: Config): FastifyPluginAsync<any>[] {
  return [
    serviceRoutes(runtime.upstream.name),
    verificationRoutes(runtime),
    notificationRoutes,
    eventRoutes(runtime),
    adminVerificationRoutes,
    adminOpsRoutes(runtime),
    webhookRoutes(runtime),
    ...(config.PROVIDER === 'sandbox' ? [sandboxRoutes(runtime)] : []),
  ];
}
