import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestApp, type TestApp } from '../support/app.ts';
import { assertProblem, call, registerUser, type ApiResponse } from '../support/http.ts';

interface ServedEntry {
  code: string;
  status: number;
  title: string;
  customer_message?: string;
  customer_message_with_detail?: string;
  retry_hint?: string;
  definite: boolean;
}

describe('the error table served at GET /v1/errors', () => {
  let app: TestApp;
  let served: Map<string, ServedEntry>;

  before(async () => {
    app = await startTestApp();
    const response = await call<{ errors: ServedEntry[] }>(app.url, 'GET', '/v1/errors');
    assert.equal(response.status, 200, response.text);
    served = new Map(response.body.errors.map((e) => [e.code, e]));
    assert.equal(served.size, response.body.errors.length, 'each code appears once');
  });
  after(() => app.close());

  test('needs no sign-in (the login page shows errors too) and may be cached by the browser', async () => {
    const response = await call(app.url, 'GET', '/v1/errors');
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(response.headers.get('cache-control'), 'public, max-age=300');
  });

  test('every problem the server answers carries the status and title of the served table', async () => {
    const customer = await registerUser(app.url);
    const answers: ApiResponse[] = [
      await call(app.url, 'GET', '/v1/nothing-here'),
      await call(app.url, 'GET', '/v1/me'),
      await call(app.url, 'POST', '/v1/auth/register', { body: { email: 'nope', password: 'short' } }),
      await call(app.url, 'POST', '/v1/auth/register', { body: { email: customer.email, password: 'long enough password' } }),
      await call(app.url, 'POST', '/v1/auth/login', { rawBody: 'email=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      await customer.client.post('/v1/verifications', { service: 'test_success' }),
      await customer.client.post('/v1/verifications', { service: 'test_success' }, { headers: { 'idempotency-key': randomUUID() } }),
      await customer.client.post('/v1/verifications', { service: 'no_such_service' }, { headers: { 'idempotency-key': randomUUID() } }),
    ];
    const codes = answers.map((a) => a.body.code);
    assert.deepEqual(codes, [
      'not_found',
      'unauthenticated',
      'validation_failed',
      'email_taken',
      'unsupported_media_type',
      'idempotency_key_missing',
      'insufficient_funds',
      'unknown_service',
    ]);
    for (const answer of answers) {
      const entry = served.get(answer.body.code);
      assert.ok(entry, `${answer.body.code} is in the served table`);
      assertProblem(answer, entry.status, entry.code);
      assert.equal(answer.body.title, entry.title);
    }
  });

  test('the table is consistent: 4xx/5xx statuses, "definite" only on 5xx, a retry hint only after a message', () => {
    for (const entry of served.values()) {
      assert.ok(entry.status >= 400 && entry.status <= 599, `${entry.code}: status ${entry.status}`);
      assert.ok(entry.title.length > 0, `${entry.code} has a title`);
      if (entry.definite) assert.ok(entry.status >= 500, `${entry.code}: "definite" only means something for a 5xx`);
      if (entry.retry_hint || entry.customer_message_with_detail) assert.ok(entry.customer_message, `${entry.code}: a hint or detail form needs the plain message`);
      if (entry.customer_message_with_detail) assert.match(entry.customer_message_with_detail, /\{detail\}/);
    }
    // The dashboard's purchase error says "you were not charged" only for these 5xx answers.
    assert.deepEqual(
      [...served.values()].filter((e) => e.definite).map((e) => e.code).sort(),
      ['no_numbers', 'provider_unavailable'],
    );
    assert.equal(served.get('internal_error')?.status, 500, 'the dashboard reads any unknown 5xx like internal_error');
  });
});
