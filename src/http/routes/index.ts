import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../config.ts';
import accountRoutes from './account.ts';
import adminBackupRoutes from './admin-backup.ts';
import adminCreditRoutes from './admin-credit.ts';
import adminMailRoutes from './admin-mail.ts';
import adminOpsRoutes from './admin-ops.ts';
import adminUpstreamRoutes from './admin-upstreams.ts';
import adminUserRoutes from './admin-users.ts';
import adminVerificationRoutes from './admin-verifications.ts';
import apiKeyRoutes from './api-keys.ts';
import areaCodeRoutes from './area-codes.ts';
import authRoutes from './auth.ts';
import errorRoutes from './errors.ts';
import eventRoutes from './events.ts';
import healthRoutes from './health.ts';
import meRoutes from './me.ts';
import metricsRoutes from './metrics.ts';
import notificationRoutes from './notifications.ts';
import paymentWebhookRoutes from './payment-webhooks.ts';
import presetRoutes from './presets.ts';
import sandboxCheckoutRoutes from './sandbox-checkout.ts';
import sandboxRoutes from './sandbox.ts';
import serviceRoutes from './services.ts';
import sessionRoutes from './sessions.ts';
import smsActivateRoutes from './sms-activate.ts';
import topUpRoutes from './top-ups.ts';
import verificationBulkRoutes from './verification-bulk.ts';
import verificationRoutes from './verifications.ts';
import walletRoutes from './wallet.ts';
import webhookEndpointRoutes from './webhook-endpoints.ts';
import webhookRoutes from './webhooks.ts';
import { configuredProviders } from '../../providers/settings.ts';

export type RoutePlugin = FastifyPluginAsyncZod;

/**
 * The one route registry: every route plugin of the API, registered in this order by buildApp.
 * One file per route or small resource under src/http/routes/; each reads what it needs from the
 * app (`app.ctx`, `app.lifecycle`, `app.hub`), so adding one is adding a line here.
 */
export function apiRoutes(config: Pick<Config, 'PROVIDER'>): RoutePlugin[] {
  return [
    healthRoutes,
    metricsRoutes,
    authRoutes,
    meRoutes,
    accountRoutes,
    presetRoutes,
    sessionRoutes,
    walletRoutes,
    apiKeyRoutes,
    serviceRoutes,
    areaCodeRoutes,
    verificationRoutes,
    verificationBulkRoutes,
    notificationRoutes,
    eventRoutes,
    adminUserRoutes,
    adminCreditRoutes,
    adminMailRoutes,
    errorRoutes,
    adminVerificationRoutes,
    adminOpsRoutes,
    adminUpstreamRoutes,
    adminBackupRoutes,
    webhookRoutes,
    webhookEndpointRoutes,
    smsActivateRoutes,
    topUpRoutes,
    paymentWebhookRoutes,
    // Registers nothing unless the sandbox payment processor is enabled.
    sandboxCheckoutRoutes,
    // The sandbox exists only when it is the configured provider.
    ...(configuredProviders(config).includes('sandbox') ? [sandboxRoutes] : []),
  ];
}
