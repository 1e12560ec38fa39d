import { createJsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { errorTable } from '../errors.ts';
import { PROBLEM_CONTENT_TYPE } from './problem.ts';

/**
 * The OpenAPI document (/openapi.json) is generated from the route schemas; this module makes it
 * tell the truth about what the server does besides the bodies (docs/api.md, "How a route declares
 * its answers"):
 *
 * - every error answer is `application/problem+json` with the one `Problem` schema, described by
 *   the codes of the error table that have its status;
 * - the statuses any route can give are added to every operation that can give them (400 for bad
 *   input, 401/403 on signed-in routes, 413/415 on writes, 500), so routes declare only their own;
 * - a success answer must be described (`schema.answers`), with its headers and content type;
 * - an operation without `operationId` is a mistake, and so is a public one that does not say so.
 *
 * test/support/openapi-conformance.ts checks every answer the HTTP tests receive against it.
 */

/** Response headers the API sends, declared once; an answer names the ones it carries. */
export const RESPONSE_HEADERS = {
  'Idempotent-Replayed': {
    description: '`true` when this answer repeats the first outcome of a request with the same Idempotency-Key; nothing was done again',
    schema: { type: 'string', enum: ['true'] },
  },
  Location: { description: 'the path of the resource this answer describes', schema: { type: 'string', pattern: '^/' } },
  'Retry-After': { description: 'seconds to wait before trying again', schema: { type: 'string', pattern: '^[0-9]+$' } },
  'Set-Cookie': {
    description:
      '`namaskah_session` (HttpOnly: the session token) and `namaskah_csrf` (readable by the page: echo it in X-CSRF-Token on cookie-authenticated writes); cleared on logout',
    schema: { type: 'string' },
  },
  'Cache-Control': { description: 'how long a cache may keep this answer (`no-store` for anything carrying a secret)', schema: { type: 'string' } },
} as const;

export type ResponseHeader = keyof typeof RESPONSE_HEADERS;

/** How a route documents one of its answers (besides its body schema in `response`). */
export interface AnswerDoc {
  description: string;
  /** The headers this answer carries: true when every such answer has it, false when only some do. */
  headers?: Partial<Record<ResponseHeader, boolean>>;
  /** The media type of the body; application/json unless said. */
  contentType?: string;
  /** The body's JSON Schema, for answers a route writes itself (an event stream) and so has no `response` entry. */
  schema?: Record<string, unknown>;
}

declare module 'fastify' {
  interface FastifySchema {
    /** The route's answers by status: description, headers, content type (docs/api.md). */
    answers?: Record<number, AnswerDoc>;
  }
}

const PROBLEM_REF = '#/components/schemas/Problem';
const PROBLEM_MEDIA_TYPE = PROBLEM_CONTENT_TYPE.split(';')[0]!;
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Problems that tell the client when to come back carry Retry-After: always on 429, sometimes on 409 and 503. */
const PROBLEM_RETRY_AFTER: Record<number, boolean> = { 409: false, 429: true, 503: false };

const CSRF_HEADER = {
  type: 'string',
  description:
    'on writes authenticated by the session cookie: the value of the `namaskah_csrf` cookie (403 `csrf_failed` without it); not needed with Authorization: Bearer',
};

type JsonObject = Record<string, any>;

/** "`code` (title)" for every code of the error table with this status. */
function problemDescription(status: number): string {
  const codes = Object.entries(errorTable)
    .filter(([, entry]) => entry.status === status)
    .map(([code, entry]) => `\`${code}\` (${entry.title})`);
  return codes.length > 0 ? `Problem details: ${codes.join(', ')}` : 'Problem details';
}

function problemAnswer(status: number): JsonObject {
  const answer: JsonObject = {
    description: problemDescription(status),
    content: { [PROBLEM_MEDIA_TYPE]: { schema: { $ref: PROBLEM_REF } } },
  };
  if (status in PROBLEM_RETRY_AFTER) answer.headers = { 'Retry-After': headerFor('Retry-After', PROBLEM_RETRY_AFTER[status]!) };
  return answer;
}

/**
 * A header in the shape @fastify/swagger expects (a JSON Schema with its description); whether it
 * is always sent rides along as REQUIRED_MARK until openApiTransformObject makes it `required`.
 */
function headerFor(name: ResponseHeader, always: boolean): JsonObject {
  const { description, schema } = RESPONSE_HEADERS[name];
  return { ...schema, description, [REQUIRED_MARK]: always };
}

function headersOf(doc: AnswerDoc): JsonObject | undefined {
  if (!doc.headers) return undefined;
  const headers: JsonObject = {};
  for (const [name, always] of Object.entries(doc.headers) as [ResponseHeader, boolean][]) headers[name] = headerFor(name, always);
  return headers;
}

const REQUIRED_MARK = 'x-namaskah-required';

/** Response headers as OpenAPI has them: `required` beside the schema, not in it. */
function liftRequiredMarks(paths: JsonObject): void {
  for (const operations of Object.values(paths)) {
    for (const operation of Object.values(operations as JsonObject)) {
      for (const response of Object.values((operation as JsonObject).responses ?? {})) {
        for (const header of Object.values((response as JsonObject).headers ?? {})) {
          const h = header as JsonObject;
          if (h.schema && REQUIRED_MARK in h.schema) {
            h.required = h.schema[REQUIRED_MARK];
            delete h.schema[REQUIRED_MARK];
          }
        }
      }
    }
  }
}

function isProblemSchema(schema: unknown): boolean {
  return typeof schema === 'object' && schema !== null && (schema as JsonObject).$ref === PROBLEM_REF;
}

/**
 * The per-route transform: @fastify/swagger turns a response entry of the shape `{description,
 * headers, content}` into exactly that response object.
 */
export function createOpenApiTransform(): (input: any) => any {
  const zodTransform = createJsonSchemaTransform({ skipList: [] });
  return (input: any) => {
    const answers: Record<string, AnswerDoc> = input.schema?.answers ?? {};
    const transformed = zodTransform(input);
    const schema: JsonObject = transformed.schema ?? {};
    if (schema.hide) return transformed;
    const method = String(input.route?.method ?? '').toUpperCase();
    const where = `${method} ${input.url}`;
    if (!schema.operationId) throw new Error(`${where}: the route schema needs an operationId`);
    delete schema.answers;

    // `{}` among the requirements: a credential is optional (it only changes what the answer shows).
    const requirements: JsonObject[] = Array.isArray(schema.security) ? schema.security : [];
    const secured = requirements.length > 0 && !requirements.some((r) => Object.keys(r).length === 0);
    // A public operation says so: the document has no global security, but generators and readers should not guess.
    if (!schema.security) schema.security = [];
    const write = WRITE_METHODS.has(method);
    if (secured && write) {
      const headers: JsonObject = schema.headers ?? { type: 'object', properties: {} };
      headers.properties = { ...headers.properties, 'x-csrf-token': CSRF_HEADER };
      schema.headers = headers;
    }

    const declared: JsonObject = schema.response ?? {};
    const statuses = new Set<string>([...Object.keys(declared), ...Object.keys(answers)]);
    // What any route of this kind can answer, whatever it declares: malformed input (the input
    // guard reads every cookie and header), missing or refused credentials, bodies of the wrong
    // size or type, a bug.
    const generic = [400, 500];
    if (secured) generic.push(401);
    if (secured && write) generic.push(403);
    if (write) generic.push(413, 415);
    for (const status of generic) statuses.add(String(status));

    const responses: JsonObject = {};
    for (const status of [...statuses].sort()) {
      const body = declared[status];
      const doc = answers[status];
      if (Number(status) >= 400 && (body === undefined || isProblemSchema(body)) && !doc) {
        responses[status] = problemAnswer(Number(status));
        continue;
      }
      if (!doc) throw new Error(`${where}: answer ${status} needs a description in schema.answers`);
      const response: JsonObject = { description: doc.description };
      const headers = headersOf(doc);
      if (headers) response.headers = headers;
      const bodySchema = doc.schema ?? body;
      if (status !== '204' && bodySchema !== undefined) {
        response.content = { [doc.contentType ?? 'application/json']: { schema: bodySchema } };
      } else {
        // How @fastify/swagger is told that an answer has no body.
        response.type = 'null';
      }
      responses[status] = response;
    }
    schema.response = responses;
    return transformed;
  };
}

/** Every `$ref` target in a JSON value. */
function refsIn(value: unknown, found: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const item of value) refsIn(item, found);
  else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string') found.add(child);
      else refsIn(child, found);
    }
  }
  return found;
}

/**
 * The whole-document transform: the zod provider's components, less those no operation reaches
 * (it registers an input and an output variant of every named schema).
 */
export function openApiTransformObject(input: any): any {
  const document: JsonObject = jsonSchemaTransformObject(input);
  liftRequiredMarks(document.paths ?? {});
  const schemas: JsonObject = document.components?.schemas ?? {};
  const prefix = '#/components/schemas/';
  const reached = new Set<string>();
  let frontier = [...refsIn(document.paths, new Set())];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const ref of frontier) {
      const name = ref.startsWith(prefix) ? ref.slice(prefix.length) : undefined;
      if (name === undefined || reached.has(name) || !(name in schemas)) continue;
      reached.add(name);
      next.push(...refsIn(schemas[name], new Set()));
    }
    frontier = next;
  }
  document.components.schemas = Object.fromEntries(Object.entries(schemas).filter(([name]) => reached.has(name)));
  return document;
}
