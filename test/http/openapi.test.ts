import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { z } from 'zod';
import { buildApp } from '../../src/http/app.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, call, login, registerUser, type TestUser } from '../support/http.ts';
import { AnswerConformance } from '../support/openapi-conformance.ts';

type JsonObject = Record<string, any>;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

function operations(document: JsonObject): { method: string; path: string; operation: JsonObject }[] {
  return Object.entries<JsonObject>(document.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => ({ method, path, operation: item[method] })),
  );
}

/** The API's description of itself (/openapi.json) and the request rules it promises. */
describe('the OpenAPI document and the body rules', () => {
  let app: TestApp;
  let document: JsonObject;
  let admin: TestUser;

  before(async () => {
    app = await startTestApp({ worker: false });
    document = (await call(app.url, 'GET', '/openapi.json')).body;
    admin = await login(app.url, app.admin.email, app.admin.password);
  });
  after(() => app.close());

  test('redocly lint (recommended rules) finds no errors', async (t) => {
    const config = await createConfig({ extends: ['recommended'] });
    const problems = await lintFromString({ source: JSON.stringify(document), absoluteRef: 'openapi.json', config });
    for (const p of problems) t.diagnostic(`${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`);
    assert.deepEqual(
      problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`),
      [],
    );
  });

  test('every operation: a unique operationId, security stated, described answers, every error as the one Problem', () => {
    assert.deepEqual(document.servers, [{ url: '/', description: 'the server this document was fetched from' }]);
    const ids = new Set<string>();
    for (const { method, path, operation } of operations(document)) {
      const where = `${method.toUpperCase()} ${path}`;
      assert.equal(typeof operation.operationId, 'string', where);
      assert.ok(!ids.has(operation.operationId), `${where}: operationId ${operation.operationId} repeats`);
      ids.add(operation.operationId);
      assert.ok(Array.isArray(operation.security), `${where}: security stated (empty when public)`);
      assert.ok(operation.responses['500'], `${where}: 500 declared`);
      for (const [status, response] of Object.entries<JsonObject>(operation.responses)) {
        assert.notEqual(response.description, 'Default Response', `${where} ${status}`);
        if (Number(status) < 400 || (path === '/health' && status === '503')) continue;
        assert.deepEqual(Object.keys(response.content), ['application/problem+json'], `${where} ${status}`);
        assert.deepEqual(response.content['application/problem+json'].schema, { $ref: '#/components/schemas/Problem' }, `${where} ${status}`);
      }
      const signedIn = operation.security.length > 0 && !operation.security.some((r: JsonObject) => Object.keys(r).length === 0);
      if (signedIn) assert.ok(operation.responses['401'], `${where}: signed-in routes declare 401`);
      if (operation.requestBody) {
        for (const status of ['400', '413', '415']) assert.ok(operation.responses[status], `${where}: ${status} declared`);
      }
    }
    for (const id of ['register', 'login', 'listErrors']) {
      const found = operations(document).find((o) => o.operation.operationId === id)!;
      assert.deepEqual(found.operation.security, [], `${id} is public`);
    }
    // Public, with an optional credential that changes the answer (operators see the checks).
    const health = operations(document).find((o) => o.operation.operationId === 'getHealth')!.operation;
    assert.deepEqual(health.security, [{}, { bearerAuth: [] }, { cookieAuth: [] }]);
    assert.equal(health.responses['401'], undefined);
    assert.ok(document.components.schemas.Problem.properties.code.enum.includes('too_many_active'));
    const schemas: JsonObject = document.components.schemas;
    const unused = Object.keys(schemas).filter((name) => {
      const others = Object.fromEntries(Object.entries(schemas).filter(([other]) => other !== name));
      return !JSON.stringify({ paths: document.paths, others }).includes(`"#/components/schemas/${name}"`);
    });
    assert.deepEqual(unused, []);
  });

  test('headers: Idempotency-Key required on purchase with the same rule as on credit; response headers declared', () => {
    const parameter = (path: string, name: string) =>
      document.paths[path].post.parameters.find((p: JsonObject) => p.in === 'header' && p.name === name);
    const purchaseKey = parameter('/v1/verifications', 'idempotency-key');
    const creditKey = parameter('/v1/admin/users/{id}/credit', 'idempotency-key');
    assert.equal(purchaseKey.required, true);
    assert.equal(creditKey.required, false);
    assert.deepEqual(purchaseKey.schema, creditKey.schema);
    assert.equal(parameter('/v1/verifications', 'x-csrf-token').required, false);

    const purchase = document.paths['/v1/verifications'].post.responses;
    assert.equal(purchase['201'].headers.Location.required, true);
    assert.equal(purchase['201'].headers['Idempotent-Replayed'].required, false);
    assert.equal(purchase['429'].headers['Retry-After'].required, true);
    assert.equal(purchase['403'].description.includes('csrf_failed'), true);
    assert.equal(document.paths['/v1/auth/login'].post.responses['200'].headers['Set-Cookie'].required, true);
    assert.deepEqual(Object.keys(document.paths['/metrics'].get.responses['200'].content), ['text/plain']);
    const events = document.paths['/v1/events'].get;
    assert.deepEqual(Object.keys(events.responses['200'].content), ['text/event-stream']);
    for (const event of ['ready', 'verification', 'notification', 'wallet']) assert.match(events.description, new RegExp(`\`${event}\``));
    // Outside the JSON API: the SMS-Activate protocol and the upstreams' webhooks.
    assert.deepEqual(Object.keys(document.paths).filter((p) => p.startsWith('/stubs') || p.startsWith('/webhooks')), []);
  });

  test('a key with a space is refused the same way on purchase and on credit, and nothing changes', async () => {
    const user = await registerUser(app.url);
    const key = { 'idempotency-key': 'two words' };
    const purchase = await user.client.post('/v1/verifications', { service: 'test_success' }, { headers: key });
    const credit = await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: 100, reason: 'r' }, { headers: key });
    for (const response of [purchase, credit]) {
      assertProblem(response, 400, 'validation_failed');
      assert.deepEqual(response.body.issues.map((i: JsonObject) => [i.in, i.path]), [['headers', '/idempotency-key']]);
    }
    assert.equal((await user.client.get('/v1/wallet')).body.balance_minor, 0);
    assert.deepEqual((await user.client.get('/v1/verifications')).body.items, []);
  });

  test('a text/plain body is 415 unsupported_media_type, as documented, and buys nothing', async () => {
    const user = await registerUser(app.url);
    await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: 500, reason: 'funds' });
    const text = await user.client.request('POST', '/v1/verifications', {
      rawBody: '{"service":"test_success"}',
      headers: { 'content-type': 'text/plain', 'idempotency-key': randomUUID() },
    });
    assertProblem(text, 415, 'unsupported_media_type');
    assert.deepEqual((await user.client.get('/v1/verifications')).body.items, []);
    assert.equal((await user.client.get('/v1/wallet')).body.available_minor, 500);
  });

  test('a body-less POST with content-type application/json: accepted where no body is needed, 400 naming the body where one is', async () => {
    const user = await registerUser(app.url);
    await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: 500, reason: 'funds' });
    const bought = await user.client.post('/v1/verifications', { service: 'test_timeout' }, { headers: { 'idempotency-key': randomUUID() } });
    assert.equal(bought.status, 201);
    const json = { 'content-type': 'application/json' };
    const cancelled = await user.client.request('POST', `/v1/verifications/${bought.body.id}/cancel`, { headers: json });
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal(cancelled.body.state, 'cancelled');
    assert.equal((await user.client.get('/v1/wallet')).body.available_minor, 500);

    const register = await call(app.url, 'POST', '/v1/auth/register', { headers: json });
    assertProblem(register, 400, 'validation_failed');
    assert.equal(register.body.issues[0].in, 'body');
    const logout = await user.client.request('POST', '/v1/auth/logout', { headers: json });
    assert.equal(logout.status, 204);
  });

  test('the answer check itself: an answer outside the document is caught', async () => {
    const conformance = new AnswerConformance({ print: false });
    const extended = buildApp(app.ctx, { lifecycle: app.server.runtime.deps, hub: app.server.runtime.hub, staticDir: false });
    conformance.install(extended);
    extended.register(async (scope) => {
      scope.get('/v1/drifted', {
        schema: {
          operationId: 'drifted',
          response: { 200: z.object({ n: z.number() }) },
          answers: { 200: { description: 'a number', headers: { Location: true } } },
        },
        handler: async (request, reply) => {
          const kind = (request.query as JsonObject).kind;
          // Deliberately outside the declaration (the type provider would refuse 202 here).
          if (kind === 'status') return reply.status(202 as 200).send({ n: 1 });
          if (kind === 'type') return reply.header('location', '/v1/drifted').type('text/html').send('<p>1</p>');
          return reply.header('location', '/v1/drifted').send({ n: 1 });
        },
      });
    });
    try {
      assert.equal((await extended.inject({ method: 'GET', url: '/v1/drifted' })).statusCode, 200);
      assert.deepEqual(conformance.mismatches, []);
      await extended.inject({ method: 'GET', url: '/v1/drifted?kind=status' });
      await extended.inject({ method: 'GET', url: '/v1/drifted?kind=type' });
      assert.equal(conformance.mismatches.length, 2, conformance.mismatches.join('\n'));
      assert.match(conformance.mismatches[0]!, /status 202 is not declared/);
      assert.match(conformance.mismatches[1]!, /content type text\/html.* is not declared/);
    } finally {
      await extended.close();
    }
  });
});
