import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

/**
 * Every answer a test server gives is checked against its own /openapi.json: the status is
 * declared for the operation, the content type is one the answer declares, every header it
 * declares as always sent is there and every declared header it sends has the declared form, and
 * a JSON body matches the declared schema. A mismatch is printed at once and fails the suite when
 * the test app closes, so the document cannot drift from the server again (docs/api.md).
 *
 * Validation is ajv (JSON Schema 2020-12, the dialect of OpenAPI 3.1) with the document's
 * components: the schemas are zod's own JSON Schema output, so ajv reads them as written
 * (docs/decisions.md, "Checking answers against the OpenAPI document").
 */
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type JsonObject = Record<string, any>;

const COMPONENTS_ID = 'urn:namaskah:openapi-components';

export class AnswerConformance {
  readonly mismatches: string[] = [];
  private document?: JsonObject;
  private ajv?: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();

  /** print: write each mismatch to stderr when it happens (off for the check's own tests). */
  constructor(private readonly options: { print?: boolean } = {}) {}

  /** Adds the onSend hook; call before the app is ready. */
  install(app: FastifyInstance): void {
    app.addHook('onSend', async (request, reply, payload) => {
      try {
        const problems = this.check(app, request, reply, payload);
        for (const problem of problems) {
          const line = `${request.method} ${request.url} → ${reply.statusCode}: ${problem}`;
          this.mismatches.push(line);
          if (this.options.print !== false) process.stderr.write(`answer does not match /openapi.json: ${line}\n`);
        }
      } catch (error) {
        this.mismatches.push(`${request.method} ${request.url}: the check itself failed: ${String(error)}`);
      }
      return payload;
    });
  }

  private setUp(app: FastifyInstance): { document: JsonObject; ajv: Ajv2020 } {
    if (!this.document || !this.ajv) {
      this.document = app.swagger() as unknown as JsonObject;
      this.ajv = new Ajv2020({ strict: false, allErrors: true });
      addFormats(this.ajv);
      this.ajv.addSchema({ $id: COMPONENTS_ID, components: this.document.components ?? {} });
    }
    return { document: this.document, ajv: this.ajv };
  }

  private validator(ajv: Ajv2020, key: string, schema: unknown): ValidateFunction {
    let validate = this.validators.get(key);
    if (!validate) {
      const anchored = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', `"${COMPONENTS_ID}#/components/`));
      validate = ajv.compile(anchored);
      this.validators.set(key, validate);
    }
    return validate;
  }

  check(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, payload: unknown): string[] {
    const route = request.routeOptions.url;
    const schema = request.routeOptions.schema as JsonObject | undefined;
    // Unknown paths, HEAD (Fastify's own twin of GET) and routes outside the document (the dashboard's files, hidden routes).
    if (route === undefined || request.method === 'HEAD' || !schema || schema.hide) return [];
    const { document, ajv } = this.setUp(app);
    const path = route.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const operation = document.paths?.[path]?.[request.method.toLowerCase()];
    if (!operation) return [`${request.method} ${path} is not in the document`];
    const status = String(reply.statusCode);
    const response = operation.responses?.[status] ?? operation.responses?.[`${status[0]}XX`] ?? operation.responses?.default;
    if (!response) return [`status ${status} is not declared (declared: ${Object.keys(operation.responses ?? {}).join(', ')})`];

    const problems: string[] = [];
    for (const [name, header] of Object.entries<JsonObject>(response.headers ?? {})) {
      const value = reply.getHeader(name.toLowerCase());
      if (value === undefined) {
        if (header.required) problems.push(`header ${name} is declared as always sent but is missing`);
        continue;
      }
      const validate = this.validator(ajv, `header:${name}:${JSON.stringify(header.schema)}`, header.schema ?? {});
      for (const item of Array.isArray(value) ? value : [value]) {
        if (!validate(String(item))) problems.push(`header ${name}: ${JSON.stringify(item)} ${ajv.errorsText(validate.errors)}`);
      }
    }

    const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined;
    const empty = payload === null || payload === undefined || text === '';
    const content: JsonObject | undefined = response.content;
    if (!content) {
      if (!empty) problems.push(`status ${status} declares no body, but one was sent`);
      return problems;
    }
    const contentType = String(reply.getHeader('content-type') ?? '');
    const media = contentType.split(';')[0]!.trim().toLowerCase();
    const declared = content[media];
    if (!declared) {
      problems.push(`content type ${contentType || '(none)'} is not declared (declared: ${Object.keys(content).join(', ')})`);
      return problems;
    }
    if (text === undefined || !/[/+]json$/.test(media)) return problems;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      problems.push(`the ${media} body is not JSON`);
      return problems;
    }
    const validate = this.validator(ajv, `${request.method} ${path} ${status} ${media}`, declared.schema ?? {});
    if (!validate(body)) problems.push(`body: ${ajv.errorsText(validate.errors)}`);
    return problems;
  }
}
