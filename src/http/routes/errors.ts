import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorTable, type ErrorEntry } from '../../errors.ts';

// The table only changes with a new release; a page load within this window reuses it.
const CACHE_CONTROL = 'public, max-age=300';

const ErrorEntrySchema = z
  .object({
    code: z.string().describe('the problem-details `code`'),
    status: z.number().int(),
    title: z.string(),
    customer_message: z.string().optional().describe('what a customer is shown; without it, show the answer’s `detail`'),
    customer_message_with_detail: z
      .string()
      .optional()
      .describe('shown instead of `customer_message` when the answer has a `detail`; `{detail}` is replaced by it'),
    retry_hint: z
      .string()
      .optional()
      .describe('follows `customer_message` when the answer has no Retry-After header'),
    definite: z.boolean().describe('a 5xx with this code means for certain that nothing was done (nobody was charged)'),
  })
  .meta({ id: 'ErrorEntry' });

function entryBody(code: string, entry: ErrorEntry): z.output<typeof ErrorEntrySchema> {
  return {
    code,
    status: entry.status,
    title: entry.title,
    customer_message: entry.customer,
    customer_message_with_detail: entry.customerWithDetail,
    retry_hint: entry.retryHint,
    definite: entry.definite === true,
  };
}

/** GET /v1/errors: every problem `code` the API answers with, its status, title and customer sentence. */
const errorRoutes: FastifyPluginAsyncZod = async (app) => {
  const body = { errors: Object.entries(errorTable).map(([code, entry]) => entryBody(code, entry)) };
  app.get('/v1/errors', {
    schema: {
      operationId: 'listErrors',
      tags: ['errors'],
      summary: 'The error codes of this API, with what to tell a customer',
      response: { 200: z.object({ errors: z.array(ErrorEntrySchema) }) },
      answers: { 200: { description: 'Every error code with its status and customer sentence', headers: { 'Cache-Control': true } } },
    },
    handler: async (_request, reply) => reply.header('cache-control', CACHE_CONTROL).send(body),
  });
};

export default errorRoutes;
