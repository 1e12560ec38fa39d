import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { isDomainError } from '../../errors.ts';
import { answerRequest } from '../../sms-activate-api/actions.ts';
import { INTERNAL_ERROR, type ProtocolAnswer } from '../../sms-activate-api/answers.ts';
import { forbidCaching } from '../auth.ts';
import { findUnstorable } from '../input-guard.ts';

/**
 * GET/POST /stubs/handler_api.php: the SMS-Activate protocol for customers' existing tools
 * (docs/sms-activate-api.md). Not part of the JSON API: answers are the protocol's text tokens and
 * JSON documents, never problem details, and the route stays out of /openapi.json.
 */
const HANDLER_PATH = '/stubs/handler_api.php';

/** Stands in for a value PostgreSQL cannot store (NUL, a lone surrogate); no parameter accepts it. */
const UNREADABLE = '\uFFFD';

const smsActivateRoutes: FastifyPluginAsyncZod = async (app) => {
  // In this plugin only: any body is taken as text and read below as a form or JSON, so no content
  // type a tool sends earns an answer outside the protocol.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));

  const answer = async (request: FastifyRequest, reply: FastifyReply) => {
    forbidCaching(reply);
    let result: ProtocolAnswer;
    try {
      // X-ApiKey is DaisySMS's spelling of the header.
      const apiKeyHeader = last(request.headers['x-api-key']) ?? last(request.headers['x-apikey']);
      result = await answerRequest(app.lifecycle, { params: paramsOf(request), apiKeyHeader });
    } catch (error) {
      request.log.error({ err: error }, 'sms-activate request failed');
      result = INTERNAL_ERROR;
    }
    return send(reply, result);
  };

  // What fails before the handler is the request's fault (a body over BODY_LIMIT_BYTES, text the
  // input guard refuses): answered from what can be read, as a PHP seller would.
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const status = isDomainError(error) ? error.status : error.statusCode;
    if (typeof status === 'number' && status < 500) return answer(request, reply);
    request.log.error({ err: error }, 'sms-activate request failed');
    forbidCaching(reply);
    return send(reply, INTERNAL_ERROR);
  });

  app.route({
    method: ['GET', 'POST'],
    url: HANDLER_PATH,
    // A HEAD would run getNumber without showing its answer.
    exposeHeadRoute: false,
    schema: { hide: true },
    handler: answer,
  });
};

function send(reply: FastifyReply, result: ProtocolAnswer): FastifyReply {
  if (result.kind === 'json') return reply.status(200).type('application/json; charset=utf-8').serializer(JSON.stringify).send(result.body);
  return reply.status(result.status).type('text/plain; charset=utf-8').send(result.body);
}

function last(value: unknown): string | undefined {
  const item = Array.isArray(value) ? value[value.length - 1] : value;
  if (typeof item === 'string') return item;
  if (typeof item === 'number' || typeof item === 'boolean') return String(item);
  return undefined;
}

/** Query string, then body parameters over them (PHP's $_REQUEST); a repeated parameter's last value. */
function paramsOf(request: FastifyRequest): Record<string, string> {
  const params: Record<string, string> = Object.create(null);
  const take = (entries: Iterable<[string, unknown]>) => {
    for (const [name, value] of entries) {
      const text = last(value);
      if (text !== undefined) params[name] = findUnstorable(text) ? UNREADABLE : text;
    }
  };
  take(Object.entries((request.query as Record<string, unknown> | undefined) ?? {}));
  take(bodyParams(request));
  return params;
}

/** A form body (also when a tool sends no content type), or a JSON object; anything else has none. */
function bodyParams(request: FastifyRequest): Iterable<[string, unknown]> {
  const body = request.body;
  if (typeof body !== 'string' || body === '') return [];
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') {
    try {
      const parsed: unknown = JSON.parse(body);
      return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? Object.entries(parsed) : [];
    } catch {
      return [];
    }
  }
  if (type.startsWith('multipart/')) return [];
  return new URLSearchParams(body).entries();
}

export default smsActivateRoutes;
