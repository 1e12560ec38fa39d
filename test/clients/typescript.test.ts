import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createNamaskahClient, liveEvents, type NamaskahClient } from '../../clients/typescript/index.ts';
import { DOCUMENT_FILE, TYPES_FILE, documentText, typesText } from '../../clients/typescript/generate.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { call } from '../support/http.ts';

/** The generated TypeScript client (clients/typescript): up to date with the document, and enough for the whole customer flow. */
describe('the TypeScript client', () => {
  let app: TestApp;

  before(async () => {
    app = await startTestApp();
  });
  after(() => app.close());

  test('the checked-in document and types match what the server serves (npm run client:generate)', async () => {
    const served = (await call(app.url, 'GET', '/openapi.json')).body;
    const stale = 'clients/typescript is stale: run `npm run client:generate` and commit the result';
    assert.equal(readFileSync(DOCUMENT_FILE, 'utf8'), documentText(served), stale);
    assert.equal(readFileSync(TYPES_FILE, 'utf8'), await typesText(served), stale);
  });

  test('register, buy with a key, the code over live events, cancel, the wallet — all through the client', async () => {
    const anonymous = createNamaskahClient({ baseUrl: app.url });
    const registered = await anonymous.POST('/v1/auth/register', { body: { email: `client-${randomUUID()}@example.test`, password: `pw-${randomUUID()}` } });
    assert.equal(registered.response.status, 201);
    const customer: NamaskahClient = createNamaskahClient({ baseUrl: app.url, token: registered.data!.token });

    // Funds come from an admin (the only way money enters in this flow).
    const signedIn = await anonymous.POST('/v1/auth/login', { body: { email: app.admin.email, password: app.admin.password } });
    const admin = createNamaskahClient({ baseUrl: app.url, token: signedIn.data!.token });
    const credited = await admin.POST('/v1/admin/users/{id}/credit', {
      params: { path: { id: registered.data!.user.id }, header: { 'idempotency-key': randomUUID() } },
      body: { amount_minor: 500, reason: 'client flow' },
    });
    assert.equal(credited.data?.wallet.available_minor, 500);

    const services = await customer.GET('/v1/services', { params: { query: { country: 'US' } } });
    const offer = services.data!.services.find((s) => s.service === 'test_success')!;
    assert.equal(offer.price_minor, 50);

    const stop = new AbortController();
    const events = liveEvents(customer, stop.signal);
    assert.equal((await events.next()).value?.event, 'ready');

    const key = randomUUID();
    const bought = await customer.POST('/v1/verifications', {
      params: { header: { 'idempotency-key': key } },
      body: { service: 'test_success', country: 'US' },
    });
    assert.equal(bought.response.status, 201);
    const id = bought.data!.id;
    assert.equal(bought.response.headers.get('location'), `/v1/verifications/${id}`);
    const replay = await customer.POST('/v1/verifications', {
      params: { header: { 'idempotency-key': key } },
      body: { service: 'test_success', country: 'US' },
    });
    assert.equal(replay.data?.id, id);
    assert.equal(replay.response.headers.get('idempotent-replayed'), 'true');

    // The sandbox delivers the code; the engine captures it and the stream says so.
    let code: string | null | undefined;
    for await (const event of events) {
      if (event.event === 'verification' && event.data.id === id && event.data.state === 'received') {
        code = event.data.code;
        break;
      }
    }
    stop.abort();
    assert.match(code ?? '', /^\d{4,8}$/);
    const read = await customer.GET('/v1/verifications/{id}', { params: { path: { id } } });
    assert.equal(read.data?.code, code);

    // A received verification cannot be cancelled: the problem's code is typed.
    const tooLate = await customer.POST('/v1/verifications/{id}/cancel', { params: { path: { id } } });
    assert.equal(tooLate.error?.code, 'invalid_state');

    const second = await customer.POST('/v1/verifications', {
      params: { header: { 'idempotency-key': randomUUID() } },
      body: { service: 'test_timeout', country: 'US' },
    });
    assert.equal(second.data?.state, 'waiting');
    const cancelled = await customer.POST('/v1/verifications/{id}/cancel', { params: { path: { id: second.data!.id } } });
    assert.equal(cancelled.data?.state, 'cancelled');

    const wallet = await customer.GET('/v1/wallet');
    assert.deepEqual(wallet.data, { balance_minor: 450, held_minor: 0, available_minor: 450, currency: wallet.data!.currency });
    const history = await customer.GET('/v1/wallet/transactions', { params: { query: { limit: 10 } } });
    // Newest first: the second purchase held and released, the first one captured (the hold's 50 becomes the charge).
    assert.deepEqual(
      history.data!.items.map((item) => [item.type, item.amount_minor]),
      [
        ['verification_refund', 50],
        ['verification_hold', -50],
        ['verification_charge', 0],
        ['verification_hold', -50],
        ['topup', 500],
      ],
    );
  });
});
