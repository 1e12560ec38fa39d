import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { forbidCaching, requireOperator } from '../auth.ts';
import { problemResponses } from '../problem.ts';
import { Security } from '../schemas.ts';

/**
 * GET /metrics: Prometheus text exposition of this instance's registry, for operators only: an
 * admin, the local operator token, or the METRICS_TOKEN that Prometheus sends as a bearer token.
 */
const metricsRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get('/metrics', {
    schema: {
      operationId: 'getMetrics',
      tags: ['operations'],
      summary: 'Prometheus metrics (operators: METRICS_TOKEN or an admin)',
      security: Security,
      response: { 200: z.string().describe('Prometheus text format'), ...problemResponses(401, 403) },
      answers: {
        200: { description: 'Prometheus text exposition format 0.0.4', contentType: 'text/plain', headers: { 'Cache-Control': true } },
      },
    },
    preValidation: async (request) => requireOperator(request),
    handler: async (_request, reply) => {
      forbidCaching(reply);
      const text = await app.metrics.metrics();
      // A string with a non-JSON content type is sent as is, not through the JSON serializer.
      return reply.type(app.metrics.contentType).send(text);
    },
  });
};

export default metricsRoutes;
