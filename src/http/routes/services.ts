import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listOffers } from '../../catalogue/catalogue.ts';
import { requireUser } from '../auth.ts';
import { purchasingProviders } from '../../verifications/failover.ts';
import { problemResponses } from '../problem.ts';
import { MinorUnits } from '../../money.ts';
import { Security } from '../schemas.ts';

/** GET /v1/services: the catalogue with customer prices. */
const serviceRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx } = app;
  // One offer per (service, country) across the providers taking purchases, at our price.
  const providers = () => purchasingProviders(app.lifecycle);
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
            }),
          ),
        }),
        ...problemResponses(400, 401),
      },
      answers: { 200: { description: 'The offers with customer prices; `available: false` ones cannot be bought now' } },
    },
    handler: async (request) => {
      await requireUser(request);
      const offers = await listOffers(ctx.database.db, providers(), request.query.country);
      return {
        services: offers.map((o) => ({
          service: o.service,
          name: o.name,
          country: o.country,
          price_minor: o.priceMinor,
          currency: ctx.config.CURRENCY,
          available: o.enabled,
        })),
      };
    },
  });
};

export default serviceRoutes;
