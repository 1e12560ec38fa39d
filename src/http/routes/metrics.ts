import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** GET /metrics: Prometheus text exposition of this instance's registry. */
const metricsRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics',
      response: { 200: z.string().describe('Prometheus text format') },
    },
    handler: async (_request, reply) => {
      const text = await app.metrics.metrics();
      // A string with a non-JSON content type is sent as is, not through the JSON serializer.
      return reply.type(app.metrics.contentType).send(text);
    },
  });
};

export default metricsRoutes;
