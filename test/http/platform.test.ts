import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import { engines } from '../support/db.ts';
import { startTestApp, withTestRoutes, type TestApp } from '../support/app.ts';
import { assertProblem, call, cookieHeader, login, registerUser } from '../support/http.ts';

const LEAKY_URL = 'postgres://app:hunter2-db-secret@db.internal:5432/namaskah';
const METRICS_TOKEN = 'prometheus-scrape-token-0123456789';

/** A route of "another module" that fails in an unexpected way, carrying a secret in its message. */
const explodingRoutes: FastifyPluginAsync = async (app) => {
  app.get('/v1/test/explode', async () => {
    throw new Error(`could not connect to ${LEAKY_URL}`);
  });
};

for (const engine of engines) {
  describe(`HTTP platform [${engine}]`, () => {
    let app: TestApp;
    const logLines: string[] = [];
    let breakerState = 'closed';
    before(async () => {
      app = await startTestApp({
        engine,
        env: { TRUST_PROXY: 'true', COOKIE_SECURE: 'auto', METRICS_TOKEN },
        logDestination: { write: (line: string) => void logLines.push(line) },
      });
      // Checks are read on every request, so another module may add one after the start.
      app.app.healthChecks.breaker = async () => ({ ok: breakerState === 'closed', state: breakerState });
    });
    after(() => app.close());

    test('unknown routes and methods: 404 not_found problem', async () => {
      assertProblem(await call(app.url, 'GET', '/v1/nothing-here'), 404, 'not_found');
      assertProblem(await call(app.url, 'POST', '/v1/nothing-here', { body: {} }), 404, 'not_found');
      assertProblem(await call(app.url, 'PUT', '/v1/me', { body: {} }), 404, 'not_found');
    });

    test('malformed JSON is 400 validation_failed; an unsupported media type is 415', async () => {
      assertProblem(await call(app.url, 'POST', '/v1/auth/login', { rawBody: '{"email": "a@b.c",' }), 400, 'validation_failed');
      const form = await call(app.url, 'POST', '/v1/auth/login', {
        rawBody: 'email=a',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assertProblem(form, 415, 'unsupported_media_type');
      const text = await call(app.url, 'POST', '/v1/auth/login', { rawBody: 'email=a', headers: { 'content-type': 'text/plain' } });
      assertProblem(text, 415, 'unsupported_media_type');
    });

    test('validation problems list every issue; unknown fields are rejected', async () => {
      const response = await call(app.url, 'POST', '/v1/auth/register', { body: { email: 'nope', password: 'short', admin: true } });
      assertProblem(response, 400, 'validation_failed');
      const paths = response.body.issues.map((i: { path: string }) => i.path).sort();
      assert.deepEqual(paths, ['/', '/email', '/password']);
      assert.match(response.body.detail, /admin/);
    });

    test('an unexpected error is 500 internal_error without internals; the log has it, scrubbed', async () => {
      // The same application as the server's (same context and logger), with a route that fails.
      const failing = await withTestRoutes(app, explodingRoutes);
      const response = await failing.call('GET', '/v1/test/explode');
      await failing.close();
      assertProblem(response, 500, 'internal_error');
      assert.doesNotMatch(response.text, /hunter2|could not connect|db\.internal|Error:|at /);
      assert.ok(response.body.request_id);
      const logged = logLines.find((l) => l.includes('could not connect'));
      assert.ok(logged, 'the error is logged');
      assert.ok(!logged.includes('hunter2-db-secret'));
      assert.ok(logged.includes('app:***@db.internal'));
    });

    test('GET /openapi.json describes every route with its schemas; /docs serves the UI', async () => {
      const response = await call(app.url, 'GET', '/openapi.json');
      assert.equal(response.status, 200);
      const spec = response.body;
      assert.equal(spec.openapi, '3.1.0');
      for (const [path, method] of [
        ['/v1/auth/register', 'post'],
        ['/v1/auth/login', 'post'],
        ['/v1/auth/logout', 'post'],
        ['/v1/me', 'get'],
        ['/v1/wallet', 'get'],
        ['/v1/wallet/transactions', 'get'],
        ['/v1/api-keys', 'post'],
        ['/v1/api-keys', 'get'],
        ['/v1/api-keys/{id}', 'delete'],
        ['/v1/admin/users', 'get'],
        ['/v1/admin/users', 'post'],
        ['/v1/admin/users/{id}/credit', 'post'],
        ['/health', 'get'],
        ['/metrics', 'get'],
      ] as const) {
        assert.ok(spec.paths[path]?.[method], `${method.toUpperCase()} ${path} documented`);
      }
      const credit = spec.paths['/v1/admin/users/{id}/credit'].post;
      const body = credit.requestBody.content['application/json'].schema;
      assert.deepEqual(body.required.sort(), ['amount_minor', 'reason']);
      assert.equal(body.additionalProperties, false);
      assert.ok(credit.responses['201'] && credit.responses['422'] && credit.responses['402']);
      assert.ok(credit.parameters.some((p: { in: string; name: string }) => p.in === 'header' && p.name === 'idempotency-key'));
      assert.ok(spec.components.schemas.Problem && spec.components.schemas.User && spec.components.schemas.Wallet);
      assert.ok(spec.components.securitySchemes.bearerAuth);
      assert.equal(spec.paths['/openapi.json'], undefined);

      const docs = await fetch(new URL('/docs/', app.url));
      assert.equal(docs.status, 200);
      assert.match(await docs.text(), /swagger/i);
    });

    test('GET /health: the public gets up/down only; operators get every check, degraded when one fails', async () => {
      const customer = await registerUser(app.url);
      const admin = await login(app.url, app.admin.email, app.admin.password);
      for (const anonymous of [
        await call(app.url, 'GET', '/health'),
        await customer.client.get('/health'),
        await call(app.url, 'GET', '/health', { token: 'nss_not-a-real-session-token' }),
      ]) {
        assert.equal(anonymous.status, 200);
        assert.deepEqual(anonymous.body, { status: 'up' });
        assert.equal(anonymous.headers.get('cache-control'), 'no-store');
      }

      const viaCookie = await call(app.url, 'GET', '/health', { headers: { cookie: cookieHeader(admin.cookies) } });
      const viaMetricsToken = await call(app.url, 'GET', '/health', { token: METRICS_TOKEN });
      for (const ok of [await admin.client.get('/health'), viaCookie, viaMetricsToken]) {
        assert.equal(ok.status, 200);
        assert.equal(ok.body.status, 'up');
        assert.equal(ok.body.degraded, false);
        assert.deepEqual(ok.body.checks.database, { ok: true });
        assert.deepEqual(ok.body.checks.breaker, { ok: true, state: 'closed' });
        assert.deepEqual(ok.body.checks.breakers, { ok: true, sandbox: { state: 'closed' } });
        assert.equal(ok.body.checks.engine.ok, true);
        assert.equal(typeof ok.body.checks.engine.lag_seconds, 'number');
        assert.equal(ok.headers.get('cache-control'), 'no-store');
      }
      breakerState = 'open';
      const degraded = await admin.client.get('/health');
      assert.equal(degraded.status, 200);
      assert.equal(degraded.body.status, 'up');
      assert.equal(degraded.body.degraded, true);
      assert.deepEqual(degraded.body.checks.breaker, { ok: false, state: 'open' });
      assert.deepEqual((await call(app.url, 'GET', '/health')).body, { status: 'up' }, 'the public does not learn of a breaker');
      breakerState = 'closed';
      app.app.healthChecks.late = async () => {
        throw new Error(`lag unknown (${LEAKY_URL})`);
      };
      const failing = await admin.client.get('/health');
      assert.equal(failing.body.checks.late.ok, false);
      assert.doesNotMatch(failing.text, /hunter2/);
      delete app.app.healthChecks.late;
    });

    test('GET /metrics: operators only (METRICS_TOKEN, an admin); Prometheus text by route and status', async () => {
      const customer = await registerUser(app.url);
      const admin = await login(app.url, app.admin.email, app.admin.password);
      assertProblem(await call(app.url, 'GET', '/metrics'), 401, 'unauthenticated');
      assertProblem(await call(app.url, 'GET', '/metrics', { token: `${METRICS_TOKEN}x` }), 401, 'unauthenticated');
      assertProblem(await customer.client.get('/metrics'), 403, 'forbidden');
      assertProblem(await call(app.url, 'GET', '/v1/me', { token: METRICS_TOKEN }), 401, 'unauthenticated');
      assert.equal((await admin.client.get('/metrics')).status, 200);
      assert.equal((await call(app.url, 'GET', '/metrics', { headers: { cookie: cookieHeader(admin.cookies) } })).status, 200);

      await call(app.url, 'GET', '/health');
      await call(app.url, 'GET', '/v1/me');
      const response = await fetch(new URL('/metrics', app.url), { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('cache-control'), 'no-store');
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await response.text();
      assert.match(text, /# TYPE namaskah_http_requests_total counter/);
      assert.match(text, /namaskah_http_requests_total\{method="GET",route="\/health",status="200"\} \d+/);
      assert.match(text, /namaskah_http_requests_total\{method="GET",route="\/v1\/me",status="401"\} \d+/);
      assert.match(text, /namaskah_http_requests_total\{method="GET",route="\/metrics",status="401"\} \d+/);
      assert.match(text, /namaskah_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/health",status="200"\}/);
      assert.doesNotMatch(text, /route="\/v1\/nothing-here"/, 'unknown paths do not become labels');
    });

    test('security headers: a strict CSP without inline scripts or styles', async () => {
      const response = await fetch(new URL('/health', app.url));
      const csp = response.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /style-src 'self'(;|$)/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.ok(response.headers.get('x-frame-options'));
    });

    test('the dashboard is served at / when web/public exists', { skip: !existsSync('web/public/index.html') }, async () => {
      const response = await fetch(new URL('/', app.url));
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /text\/html/);
      assertProblem(await call(app.url, 'GET', '/no-such-file.js'), 404, 'not_found');
    });

    test('cookies are Secure behind TLS (X-Forwarded-Proto with TRUST_PROXY, COOKIE_SECURE=auto)', async () => {
      const email = `secure-${Date.now()}@example.test`;
      const viaTls = await call(app.url, 'POST', '/v1/auth/register', {
        body: { email, password: 'secure-password' },
        headers: { 'x-forwarded-proto': 'https' },
      });
      assert.equal(viaTls.status, 201);
      assert.ok(viaTls.headers.getSetCookie().every((c) => /;\s*Secure/i.test(c)));
      const plain = await call(app.url, 'POST', '/v1/auth/login', { body: { email, password: 'secure-password' } });
      assert.ok(plain.headers.getSetCookie().every((c) => !/;\s*Secure/i.test(c)));
    });

    test('logs never contain passwords, tokens, API keys or cookies', async () => {
      const password = 'Sup3r-Secret-Passw0rd';
      const user = await registerUser(app.url, { email: `logged-${Date.now()}@example.test`, password });
      const session = await login(app.url, user.email, password);
      const key = (await session.client.post('/v1/api-keys', { name: 'logged' })).body.key as string;
      await call(app.url, 'GET', '/v1/me', { headers: { cookie: `namaskah_session=${session.token}` } });
      await call(app.url, 'GET', '/v1/me', { token: key });
      await call(app.url, 'POST', '/v1/auth/login', { body: { email: user.email, password: `${password}-wrong` } });
      const admin = await login(app.url, app.admin.email, app.admin.password);
      await admin.client.post(`/v1/admin/users/${user.id}/credit`, { amount_minor: 1, reason: 'log test' });
      app.ctx.logger.info({ databaseUrl: LEAKY_URL, password, nested: { token: key } }, `connecting to ${LEAKY_URL}`);
      const text = logLines.join('');
      assert.ok(text.includes('request completed'), 'requests are logged');
      for (const secret of [password, session.token, user.token, key, admin.token, app.admin.password, 'hunter2-db-secret', session.cookies.namaskah_csrf!]) {
        assert.ok(!text.includes(secret), `secret ${secret.slice(0, 6)}… leaked into the log`);
      }
    });
  });

  describe(`health when the database is gone [${engine}]`, () => {
    test('GET /health answers 503 down; operators see which check failed, a token that cannot be checked counts as none', async () => {
      const app = await startTestApp({ engine, env: { METRICS_TOKEN } });
      try {
        const admin = await login(app.url, app.admin.email, app.admin.password);
        await app.ctx.database.close();
        const response = await call(app.url, 'GET', '/health');
        assert.equal(response.status, 503);
        assert.deepEqual(response.body, { status: 'down' });
        const withSession = await admin.client.get('/health');
        assert.equal(withSession.status, 503);
        assert.deepEqual(withSession.body, { status: 'down' });
        const operator = await call(app.url, 'GET', '/health', { token: METRICS_TOKEN });
        assert.equal(operator.status, 503);
        assert.equal(operator.body.status, 'down');
        assert.equal(operator.body.degraded, true);
        assert.equal(operator.body.checks.database.ok, false);
      } finally {
        await app.close();
      }
    });
  });
}
