import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import adminCreditRoutes from './admin-credit.ts';
import adminUserRoutes from './admin-users.ts';
import apiKeyRoutes from './api-keys.ts';
import authRoutes from './auth.ts';
import errorRoutes from './errors.ts';
import healthRoutes from './health.ts';
import meRoutes from './me.ts';
import metricsRoutes from './metrics.ts';
import walletRoutes from './wallet.ts';

export type RoutePlugin = FastifyPluginAsyncZod;

/**
 * Every route plugin of the API, registered in this order by buildApp. Add a module's routes by
 * appending its plugin here (one file per route or small resource under src/http/routes/).
 */
export const routes: RoutePlugin[] = [
  healthRoutes,
  metricsRoutes,
  authRoutes,
  meRoutes,
  walletRoutes,
  apiKeyRoutes,
  adminUserRoutes,
  adminCreditRoutes,
  errorRoutes,
];
