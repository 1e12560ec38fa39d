import { sql } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { scrubSecrets } from '../../logging.ts';
import { forbidCaching, isOperator } from '../auth.ts';
import { OptionalSecurity } from '../schemas.ts';

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

const HealthSchema = z.object({
  status: z.enum(['up', 'down']).describe('up: this instance can serve (its database answers); down: 503'),
  degraded: z.boolean().optional().describe('operators only: some check is unhappy (engine lag, an open breaker)'),
  checks: z.record(z.string(), CheckSchema).optional().describe('operators only: every check with its details'),
});

/**
 * GET /health: liveness and readiness. 503 `down` when the database does not answer (the instance
 * cannot serve), else 200 `up`. That is all the public learns; operators (an admin, the local
 * operator token, the METRICS_TOKEN) also get every check: engine lag with the workers' host names
 * and pids, breaker states; `degraded` when one of those is unhappy.
 */
const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get('/health', {
    schema: {
      operationId: 'getHealth',
      tags: ['operations'],
      security: OptionalSecurity,
      summary: 'Health of this instance: up/down for everyone, the checks for operators',
      response: { 200: HealthSchema, 503: HealthSchema },
      answers: {
        200: { description: '`up`: this instance can serve', headers: { 'Cache-Control': true } },
        503: { description: '`down`: the database does not answer', headers: { 'Cache-Control': true } },
      },
    },
    handler: async (request, reply) => {
      // The answer depends on who asks: no shared cache may hand an operator's answer to anyone.
      forbidCaching(reply);
      const database = await runCheck(async () => {
        await app.ctx.database.db.execute(sql`SELECT 1`);
      });
      const status = database.ok ? 'up' : 'down';
      const code = database.ok ? 200 : 503;
      if (!isOperator(request)) return reply.status(code).send({ status });
      const checks: Record<string, z.output<typeof CheckSchema>> = { database };
      for (const [name, check] of Object.entries(app.healthChecks)) checks[name] = await runCheck(check);
      return reply.status(code).send({ status, degraded: !Object.values(checks).every((c) => c.ok), checks });
    },
  });
};

export default healthRoutes;
