import { sql } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { scrubSecrets } from '../../logging.ts';

const CHECK_TIMEOUT_MS = 3_000;

const CheckSchema = z.looseObject({ ok: z.boolean() });

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function runCheck(check: () => Promise<unknown>): Promise<z.output<typeof CheckSchema>> {
  try {
    const result = await withTimeout(check(), CHECK_TIMEOUT_MS);
    if (result && typeof result === 'object' && !Array.isArray(result)) {
      const fields = result as Record<string, unknown>;
      return { ...fields, ok: fields.ok !== false };
    }
    return result === undefined ? { ok: true } : { ok: true, value: result };
  } catch (error) {
    return { ok: false, error: scrubSecrets(error instanceof Error ? error.message : String(error)) };
  }
}

/**
 * GET /health: liveness and readiness. 503 when the database does not answer (the instance cannot
 * serve); 200 "degraded" when another check (engine lag, a provider's breaker) is unhappy.
 */
const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get('/health', {
    schema: {
      tags: ['operations'],
      summary: 'Health of this instance and its dependencies',
      response: {
        200: z.object({ status: z.enum(['ok', 'degraded']), checks: z.record(z.string(), CheckSchema) }),
        503: z.object({ status: z.enum(['ok', 'degraded']), checks: z.record(z.string(), CheckSchema) }),
      },
    },
    handler: async (_request, reply) => {
      const checks: Record<string, z.output<typeof CheckSchema>> = {
        database: await runCheck(async () => {
          await app.ctx.database.db.execute(sql`SELECT 1`);
        }),
      };
      for (const [name, check] of Object.entries(app.healthChecks)) checks[name] = await runCheck(check);
      const status = Object.values(checks).every((c) => c.ok) ? 'ok' : 'degraded';
      return reply.status(checks.database!.ok ? 200 : 503).send({ status, checks });
    },
  });
};

export default healthRoutes;
