import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listOffers } from '../../catalogue/catalogue.ts';
import { listedOptionSurcharges } from '../../catalogue/number-options.ts';
import { cachedDeliveryStats, deliveryStats, STATS_MIN_SAMPLE, statsKey } from '../../catalogue/stats.ts';
import { requireUser } from '../auth.ts';
import { capabilitiesOf, purchasingProviders } from '../../verifications/failover.ts';
import { problemResponses } from '../problem.ts';
import { MinorUnits } from '../../money.ts';
import { Security } from '../schemas.ts';

export const DeliveryStatsSchema = z
  .object({
    sample_size: z.number().int().describe('verifications of this offer that finished in the last 24 hours'),
    success_rate: z
      .number()
      .min(0)
      .max(1)
      .nullable()
      .describe(`share of them that received a code (0–1); null with fewer than ${STATS_MIN_SAMPLE} finished: too few to tell`),
    median_seconds_to_code: z
      .number()
      .int()
      .nullable()
      .describe(`median seconds from purchase to code among those received; null with fewer than ${STATS_MIN_SAMPLE} finished or none received`),
  })
  .describe('How this offer delivered over the last 24 hours');

export function statsResource(s: { sampleSize: number; successRate: number | null; medianSecondsToCode: number | null }) {
  return { sample_size: s.sampleSize, success_rate: s.successRate, median_seconds_to_code: s.medianSecondsToCode };
}

/** GET /v1/services: the catalogue with customer prices and how each offer delivered lately. */
const serviceRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;
  // One offer per (service, country) across the providers taking purchases, at our price.
  const providers = () => purchasingProviders(app.lifecycle);
  const stats = cachedDeliveryStats(ctx.clock);
  app.get('/v1/services', {
    preValidation: requireUser,
    schema: {
      operationId: 'listServices',
      tags: ['verifications'],
      summary: 'What can be bought, and at what price',
      security: Security,
      querystring: z.strictObject({ country: z.string().regex(/^[A-Z]{2}$/, 'ISO 3166 alpha-2, upper case').optional() }),
      response: {
        200: z.object({
          services: z.array(
            z.object({
              service: z.string(),
              name: z.string(),
              country: z.string(),
              price_minor: MinorUnits,
              currency: z.string(),
              available: z.boolean(),
              last_24h: DeliveryStatsSchema,
              voice: z.boolean().describe('can be bought with `capability: voice` (the code comes by a call)'),
              surcharge_minor: z
                .object({ area_code: MinorUnits.nullable(), carrier: MinorUnits.nullable(), voice: MinorUnits.nullable() })
                .describe('what choosing area codes, carriers or a voice call adds to price_minor (each alone); null when no provider behind the offer takes it'),
            }),
          ),
        }),
        ...problemResponses(400, 401),
      },
      answers: {
        200: {
          description:
            'The offers with customer prices and their success rate and median time to code over the last 24 hours; `available: false` ones cannot be bought now',
        },
      },
    },
    handler: async (request) => {
      await requireUser(request);
      const offers = await listOffers(ctx.database.db, providers(), request.query.country);
      const recent = new Map((await stats(ctx.database.db)).map((r) => [statsKey(r.service, r.country), r]));
      return {
        services: offers.map((o) => {
          const routes = o.routes.map((r) => ({ costMinor: r.costMinor, capabilities: capabilitiesOf(app.lifecycle, r.provider) }));
          const listed = listedOptionSurcharges(o.priceMinor, routes, o.country);
          const voice = o.voice && routes.some((r) => r.capabilities.voice);
          return {
            service: o.service,
            name: o.name,
            country: o.country,
            price_minor: o.priceMinor,
            currency: ctx.config.CURRENCY,
            available: o.enabled,
            last_24h: statsResource(recent.get(statsKey(o.service, o.country)) ?? deliveryStats(0, 0, null)),
            voice,
            surcharge_minor: { ...listed, voice: voice ? listed.voice : null },
          };
        }),
      };
    },
  });
};

export default serviceRoutes;
