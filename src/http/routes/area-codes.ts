import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findOffer } from '../../catalogue/catalogue.ts';
import { listedOptionSurcharges } from '../../catalogue/number-options.ts';
import { DomainError } from '../../errors.ts';
import { MinorUnits } from '../../money.ts';
import { isProviderError } from '../../providers/provider.ts';
import { providerFor } from '../../providers/set.ts';
import { capabilitiesOf, purchasingProviders } from '../../verifications/failover.ts';
import { requireUser } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';

/** GET /v1/area-codes: what can be chosen about the number, and what each choice adds to the price. */
const areaCodeRoutes: FastifyPluginAsyncZod = async (app) => {
  const { ctx, lifecycle } = app;
  app.get('/v1/area-codes', {
    preValidation: requireUser,
    schema: {
      operationId: 'listAreaCodes',
      tags: ['verifications'],
      summary: 'Area codes, carriers and voice on offer, with their surcharges',
      description:
        'For a country (default DEFAULT_COUNTRY) and optionally a service: the area codes the provider lists, the carriers it accepts, ' +
        'whether voice is offered, and what each choice adds to the price (with a service: our price for it; without: null).',
      security: Security,
      querystring: z.strictObject({
        country: z.string().regex(/^[A-Z]{2}$/, 'ISO 3166 alpha-2, upper case').optional(),
        service: z.string().trim().min(1).max(64).optional(),
      }),
      response: {
        200: z.object({
          country: z.string(),
          service: z.string().nullable(),
          area_codes: z.array(z.object({ area_code: z.string(), region: z.string().nullable() })).describe('empty when area codes cannot be chosen here'),
          carriers: z.array(z.string()).nullable().describe('the carrier names accepted; null when any name is passed on to the provider'),
          can_choose_area_code: z.boolean(),
          can_choose_carrier: z.boolean(),
          voice: z.boolean().describe('the service (or, without one, the provider) can be bought with a voice call'),
          surcharge_minor: z
            .object({ area_code: MinorUnits.nullable(), carrier: MinorUnits.nullable(), voice: MinorUnits.nullable() })
            .describe("what each option adds to this service's price; null without a service or when the option is not offered"),
          currency: z.string(),
        }),
        ...problemResponses(400, 401, 422, 503),
      },
      answers: { 200: { description: 'What can be chosen about the number here, and at what price' } },
    },
    handler: async (request) => {
      await requireUser(request);
      const country = request.query.country ?? ctx.config.DEFAULT_COUNTRY;
      // The preferred provider taking purchases that offers area codes here (else the preferred one).
      const purchasing = purchasingProviders(lifecycle);
      const name = purchasing.find((n) => capabilitiesOf(lifecycle, n).areaCodes && capabilitiesOf(lifecycle, n).areaCodeCountries.includes(country)) ?? purchasing[0]!;
      const provider = providerFor(lifecycle, name);
      const capabilities = capabilitiesOf(lifecycle, name);
      const service = request.query.service ?? null;
      // Our price across every provider taking purchases (the routed offer), and what each option
      // adds to it: the most any provider that can take it needs (docs/number-options.md, "Price").
      const offer = service === null ? undefined : await findOffer(ctx.database.db, purchasing, service, country);
      if (service !== null && !offer) throw new DomainError('unknown_service', `no service "${service}" in ${country}`);
      const areaCodesHere = capabilities.areaCodes && capabilities.areaCodeCountries.includes(country);
      let areaCodes: { area_code: string; region: string | null }[] = [];
      if (areaCodesHere && provider.areaCodes) {
        try {
          areaCodes = (await provider.areaCodes()).map((a) => ({ area_code: a.areaCode, region: a.region }));
        } catch (error) {
          if (!isProviderError(error)) throw error;
          throw new DomainError('provider_unavailable', 'the provider cannot list its area codes right now');
        }
      }
      const voice = capabilities.voice && (offer ? offer.voice : true);
      const listed = offer
        ? listedOptionSurcharges(offer.priceMinor, offer.routes.map((r) => ({ costMinor: r.costMinor, capabilities: capabilitiesOf(lifecycle, r.provider) })), country)
        : { area_code: null, carrier: null, voice: null };
      return {
        country,
        service,
        area_codes: areaCodes,
        carriers: capabilities.carriers ? capabilities.carrierNames : [],
        can_choose_area_code: areaCodesHere,
        can_choose_carrier: capabilities.carriers,
        voice,
        surcharge_minor: {
          area_code: areaCodesHere ? listed.area_code : null,
          carrier: capabilities.carriers ? listed.carrier : null,
          voice: voice ? listed.voice : null,
        },
        currency: ctx.config.CURRENCY,
      };
    },
  });
};

export default areaCodeRoutes;
