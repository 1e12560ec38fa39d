import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { providerModes } from '../../providers/controls.ts';
import { changeUpstream, upstreamsReport, type UpstreamReport } from '../../ops/upstreams.ts';
import { requireAdmin } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';
import { DeliveryStatsSchema, statsResource } from './services.ts';

/**
 * The operator's upstreams (docs/operations.md, "Upstreams"): GET /v1/admin/upstreams shows each
 * provider's mode, breaker, balance, delivery, owed cancels and margins; PUT /v1/admin/upstreams/:provider
 * enables, disables (the kill switch) or drains it and sets its low-balance threshold (audited).
 */
const UpstreamSchema = z.object({
  provider: z.string(),
  configured: z.boolean().describe('false: known only from the data (its orders still settle), not in the configuration'),
  mode: z.enum(providerModes).describe('enabled sells; disabled (the kill switch) and draining sell nothing new; existing orders settle in every mode'),
  changed_by: z.string().nullable().describe('the admin who last changed the mode or threshold'),
  changed_at: z.string().nullable(),
  breaker: z.enum(['closed', 'open', 'half_open', 'isolated']).nullable().describe("this process's breaker for the provider; null when not configured"),
  balance: z
    .object({
      amount_minor: z.number().int().nullable().describe('null when the upstream does not state it'),
      currency: z.string(),
      read_at: z.string(),
      live: z.boolean().describe('false: the upstream did not answer now; this is the last balance read'),
    })
    .nullable(),
  balance_low_minor: z.number().int().min(0).describe('the low-balance threshold in force, in minor units (0: no alert)'),
  balance_low: z.boolean(),
  cancels_owed: z.object({
    count: z.number().int(),
    value_minor: z.number().int().describe('at most this much is owed back by the upstream (the cost caps of those orders)'),
  }),
  offers: z.array(
    z.object({
      service: z.string(),
      country: z.string(),
      enabled: z.boolean().nullable().describe('null: no longer in the catalogue'),
      price_minor: z.number().int().nullable(),
      cost_minor: z.number().int().nullable(),
      margin_minor: z.number().int().nullable().describe('price − cost'),
      last_24h: DeliveryStatsSchema,
    }),
  ),
});

function upstreamResource(r: UpstreamReport) {
  return {
    provider: r.provider,
    configured: r.configured,
    mode: r.mode,
    changed_by: r.changedBy,
    changed_at: r.changedAt?.toISOString() ?? null,
    breaker: r.breaker,
    balance: r.balance && { amount_minor: r.balance.amountMinor, currency: r.balance.currency, read_at: r.balance.readAt.toISOString(), live: r.balance.live },
    balance_low_minor: r.balanceLowMinor,
    balance_low: r.balanceLow,
    cancels_owed: { count: r.cancelsOwed.count, value_minor: r.cancelsOwed.valueMinor },
    offers: r.offers.map((o) => ({
      service: o.service,
      country: o.country,
      enabled: o.enabled,
      price_minor: o.priceMinor,
      cost_minor: o.costMinor,
      margin_minor: o.marginMinor,
      last_24h: statsResource(o.last24h),
    })),
  };
}

const adminUpstreamRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;
  const deps = { database: ctx.database, clock: ctx.clock, config: ctx.config };

  app.get('/v1/admin/upstreams', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'adminListUpstreams',
      tags: ['admin', 'operations'],
      summary: 'Each upstream: mode, breaker, balance, delivery over the last 24 hours, owed cancels, margins',
      security: Security,
      response: { 200: z.object({ upstreams: z.array(UpstreamSchema) }), ...problemResponses(401, 403) },
      answers: { 200: { description: 'Every configured upstream and every other one the data knows' } },
    },
    handler: async (request) => {
      await requireAdmin(request);
      return { upstreams: (await upstreamsReport(deps, app.upstreams)).map(upstreamResource) };
    },
  });

  app.put('/v1/admin/upstreams/:provider', {
    preValidation: requireAdmin,
    schema: {
      operationId: 'adminChangeUpstream',
      tags: ['admin', 'operations'],
      summary: 'Enable, disable (kill switch) or drain an upstream; set its low-balance threshold',
      security: Security,
      params: z.object({ provider: z.string().min(1).max(100) }),
      body: z
        .strictObject({
          mode: z.enum(providerModes).optional(),
          balance_low_minor: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional().describe('null: back to UPSTREAM_BALANCE_LOW_MINOR'),
        })
        .refine((b) => b.mode !== undefined || b.balance_low_minor !== undefined, { message: 'give mode, balance_low_minor or both' }),
      response: { 200: z.object({ upstream: UpstreamSchema }), ...problemResponses(400, 401, 403) },
      answers: { 200: { description: 'The upstream after the change (every process stops or resumes its purchases within a second)' } },
    },
    handler: async (request) => {
      const admin = await requireAdmin(request);
      const { provider } = request.params;
      await changeUpstream(
        deps,
        app.upstreams,
        { provider, mode: request.body.mode, balanceLowMinor: request.body.balance_low_minor },
        admin.via === 'ops' ? { actorId: null, actor: 'cli' } : { actorId: admin.userId, actor: 'admin' },
      );
      // This process sees its own change before answering; the others hear of it through the database.
      await app.lifecycle.controls?.refresh?.();
      request.log.info({ provider, mode: request.body.mode, balance_low_minor: request.body.balance_low_minor }, 'upstream controls changed');
      const [report] = await upstreamsReport(deps, app.upstreams, { only: provider });
      return { upstream: upstreamResource(report!) };
    },
  });
};

export default adminUpstreamRoutes;
