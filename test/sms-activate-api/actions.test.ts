import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import { rows } from '../../src/db/database.ts';
import { engines } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { ManualClock } from '../support/clock.ts';
import { call, login, type TestUser } from '../support/http.ts';
import {
  assertJson,
  assertText,
  handlerApi,
  HANDLER_PATH,
  protocolCustomer,
  walletOf,
  type ProtocolCustomer,
} from '../support/handler-api.ts';

/**
 * The SMS-Activate protocol at /stubs/handler_api.php, action by action and error by error, with
 * the exact answers a tool reads: one real server over the sandbox, the clock and the engine driven
 * by hand so every answer is settled when it is read.
 */

/** Every service the sandbox catalogue offers, by its protocol code, and its price in major units. */
const SANDBOX_PRICES: Record<string, number> = {
  am: 0.75,
  ds: 0.6,
  fb: 0.8,
  go: 0.9,
  ig: 0.8,
  lf: 0.7,
  mm: 0.6,
  tg: 1.1,
  testalternate: 0.5,
  testambiguous: 0.5,
  testdelayed: 0.5,
  testlate: 0.5,
  testmismatch: 0.5,
  testnonumbers: 0.5,
  testprovidererror: 0.5,
  testsuccess: 0.5,
  testtimeout: 0.5,
  testvoicerecording: 0.5,
  ub: 0.65,
  wa: 1.2,
};
const SANDBOX_CODES = Object.keys(SANDBOX_PRICES).sort();

/** What /v1 shows of the customer's newest verification. */
async function newestVerification(user: TestUser): Promise<any> {
  const list = await user.client.get('/v1/verifications?limit=1');
  assert.equal(list.status, 200);
  return list.body.items[0];
}

const protocolTime = (iso: string) => iso.slice(0, 19).replace('T', ' ');

for (const engine of engines) {
  describe(`SMS-Activate protocol: every action and every error [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    const clock = new ManualClock('2026-03-01T12:00:00Z');
    const logLines: string[] = [];

    before(async () => {
      app = await startTestApp({
        engine,
        worker: false,
        clock,
        // Ordinary sandbox services never deliver here: every code arrives by hand.
        env: { MAX_ACTIVE_VERIFICATIONS: '50', PURCHASES_PER_MINUTE: '100000', VERIFICATION_TTL_SECONDS: '600', SANDBOX_FAILURE_RATE: '1' },
        logDestination: new Writable({
          write(chunk, _encoding, done) {
            logLines.push(String(chunk));
            done();
          },
        }),
      });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(() => app.close());

    const customer = (funds: number) => protocolCustomer(app, admin, funds);

    async function storedVerifications(c: ProtocolCustomer): Promise<number> {
      const [row] = await rows<{ n: number }>(app.ctx.database.db, sql`SELECT count(*)::int AS n FROM verifications WHERE user_id = ${c.user.id}`);
      return row!.n;
    }

    /** Buys through the protocol, a second after whatever came before (lists are ordered by time). */
    async function bought(c: ProtocolCustomer, service: string, extra: Record<string, string> = {}): Promise<{ id: string; phone: string; verification: any }> {
      clock.advance(1000);
      const text = assertText(await c.call({ action: 'getNumber', service, ...extra }), /^ACCESS_NUMBER:\d+:\d+$/);
      const [, id = '', phone = ''] = text.split(':');
      const verification = await newestVerification(c.user);
      assert.equal(verification.phone_number, phone);
      return { id, phone, verification };
    }

    const sms = async (c: ProtocolCustomer, verificationId: string, text: string) => {
      const delivered = await c.user.client.post('/v1/sandbox/sms', { verification_id: verificationId, text });
      assert.equal(delivered.status, 200, delivered.text);
      return delivered.body;
    };

    test('getBalance and getBalanceAndCashBack: the available balance in major units with two decimals; held money is not available', async () => {
      const rich = await customer(1000);
      assertText(await rich.call({ action: 'getBalance' }), 'ACCESS_BALANCE:10.00');
      await bought(rich, 'testtimeout');
      assertText(await rich.call({ action: 'getBalance' }), 'ACCESS_BALANCE:9.50');
      assertText(await rich.call({ action: 'getBalanceAndCashBack' }), 'ACCESS_BALANCE:9.50');
      assert.deepEqual(await walletOf(rich.user), [1000, 50, 950]);

      assertText(await (await customer(0)).call({ action: 'getBalance' }), 'ACCESS_BALANCE:0.00');
      assertText(await (await customer(5)).call({ action: 'getBalance' }), 'ACCESS_BALANCE:0.05');
    });

    test('getNumber: ACCESS_NUMBER:<activation id>:<phone>, the number /v1 shows, its price held; ids are integers that grow', async () => {
      const c = await customer(1000);
      const first = await bought(c, 'wa');
      assert.equal(first.verification.service, 'whatsapp');
      assert.equal(first.verification.country, 'US');
      assert.equal(first.verification.state, 'waiting');
      assert.deepEqual(await walletOf(c.user), [1000, 120, 880]);
      const second = await bought(c, 'testtimeout', { country: 'GB' });
      assert.equal(second.verification.service, 'test_timeout');
      assert.equal(second.verification.country, 'GB');
      assert.ok(Number(second.id) > Number(first.id));
      // The Namaskah name answers too, underscores and all.
      assert.equal((await bought(c, 'test_timeout', { country: 'de' })).verification.country, 'DE');
      assert.deepEqual(await walletOf(c.user), [1000, 220, 780]);
    });

    test('getNumberV2: the documented JSON fields, exactly; countryCode echoes the id asked with', async () => {
      const c = await customer(1000);
      const answer = assertJson(await c.call({ action: 'getNumberV2', service: 'tg', country: '187' }));
      const v = await newestVerification(c.user);
      assert.deepEqual(answer, {
        activationId: answer.activationId,
        phoneNumber: v.phone_number,
        activationCost: 1.1,
        currency: 840,
        countryCode: '187',
        canGetAnotherSms: true,
        activationTime: protocolTime(v.created_at),
        activationEndTime: protocolTime(v.expires_at),
        activationOperator: 'any',
      });
      assert.ok(Number.isSafeInteger(answer.activationId) && answer.activationId > 0);
      assert.match(answer.activationTime, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
      assert.equal(Date.parse(`${answer.activationEndTime}Z`) - Date.parse(`${answer.activationTime}Z`), 600_000);
      // The same activation through getStatus, by its id.
      assertText(await c.call({ action: 'getStatus', id: String(answer.activationId) }), 'STATUS_WAIT_CODE');
      // ISO codes are answered with the table's first id for the country.
      const v2 = async (params: Record<string, string>) => {
        clock.advance(1000);
        const answer = assertJson(await c.call({ action: 'getNumberV2', service: 'tg', ...params }));
        return [answer.countryCode, (await newestVerification(c.user)).country];
      };
      assert.deepEqual(await v2({ country: 'us' }), ['12', 'US']);
      assert.deepEqual(await v2({ country: '16' }), ['16', 'GB']);
      assert.deepEqual(await v2({ country: 'gb' }), ['16', 'GB']);
      assert.deepEqual(await v2({}), ['12', 'US'], 'DEFAULT_COUNTRY');
    });

    test('getStatus: STATUS_WAIT_CODE, then STATUS_OK:<code>; a message without a code is given whole, on one line; STATUS_CANCEL once released', async () => {
      const c = await customer(1000);
      const a = await bought(c, 'testtimeout');
      assertText(await c.call({ action: 'getStatus', id: a.id }), 'STATUS_WAIT_CODE');
      await sms(c, a.verification.id, 'Your code is 424242');
      assertText(await c.call({ action: 'getStatus', id: a.id }), 'STATUS_OK:424242');
      // The verification's own id works as well.
      assertText(await c.call({ action: 'getStatus', id: a.verification.id }), 'STATUS_OK:424242');

      const b = await bought(c, 'testtimeout');
      await sms(c, b.verification.id, 'Tap the link\nto sign in');
      assertText(await c.call({ action: 'getStatus', id: b.id }), 'STATUS_OK:Tap the link to sign in');

      const d = await bought(c, 'testtimeout');
      assertText(await c.call({ action: 'setStatus', id: d.id, status: '8' }), 'ACCESS_CANCEL');
      assertText(await c.call({ action: 'getStatus', id: d.id }), 'STATUS_CANCEL');
    });

    test('getStatusV2: JSON with sms null while waiting, then the charged message; STATUS_CANCEL text once released', async () => {
      const c = await customer(1000);
      const a = await bought(c, 'testtimeout');
      assert.deepEqual(assertJson(await c.call({ action: 'getStatusV2', id: a.id })), { verificationType: 0, sms: null, call: null });
      clock.advance(2000);
      const received = await sms(c, a.verification.id, 'G-123456 is your code');
      assert.deepEqual(assertJson(await c.call({ action: 'getStatusV2', id: a.id })), {
        verificationType: 0,
        sms: { dateTime: protocolTime(received.messages[0].received_at), code: '123456', text: 'G-123456 is your code' },
        call: null,
      });
      const b = await bought(c, 'testtimeout');
      assertText(await c.call({ action: 'setStatus', id: b.id, status: '8' }), 'ACCESS_CANCEL');
      assertText(await c.call({ action: 'getStatusV2', id: b.id }), 'STATUS_CANCEL');
    });

    test('setStatus: 1 ACCESS_READY, 3 BAD_STATUS before a code, 6 ACCESS_ACTIVATION once a code arrived, 8 and -1 ACCESS_CANCEL with the hold released', async () => {
      const c = await customer(1000);
      const a = await bought(c, 'testtimeout');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '1' }), 'ACCESS_READY');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '3' }), 'BAD_STATUS');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '6' }), 'BAD_STATUS');
      assert.deepEqual(await walletOf(c.user), [1000, 50, 950], 'nothing moved');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '8' }), 'ACCESS_CANCEL');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      // Cancelling again answers the same; the other statuses say it ended.
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '8' }), 'ACCESS_CANCEL');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '1' }), 'STATUS_CANCEL');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '6' }), 'STATUS_CANCEL');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000], 'released once');

      const b = await bought(c, 'testtimeout');
      assertText(await c.call({ action: 'setStatus', id: b.id, status: '-1' }), 'ACCESS_CANCEL');
      assert.equal((await newestVerification(c.user)).state, 'cancelled');

      const d = await bought(c, 'testtimeout');
      await sms(c, d.verification.id, 'code 777888');
      assertText(await c.call({ action: 'setStatus', id: d.id, status: '1' }), 'ACCESS_READY');
      assertText(await c.call({ action: 'setStatus', id: d.id, status: '6' }), 'ACCESS_ACTIVATION');
      assert.deepEqual(await walletOf(c.user), [950, 0, 950]);
    });

    test('setStatus 3: another SMS on the same activation, free; getStatus says STATUS_WAIT_RETRY, then STATUS_OK with the new code', async () => {
      const c = await customer(1000);
      const a = await bought(c, 'testtimeout');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '3' }), 'BAD_STATUS');
      await sms(c, a.verification.id, 'code 777888');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '3' }), 'ACCESS_RETRY_GET');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '3' }), 'ACCESS_RETRY_GET');
      assertText(await c.call({ action: 'getStatus', id: a.id }), 'STATUS_WAIT_RETRY:777888');
      const listed = await c.user.client.get('/v1/verifications?limit=100');
      const children = listed.body.items.filter((v: { parent_id: string | null }) => v.parent_id === a.verification.id);
      assert.equal(children.length, 1, 'a retried setStatus 3 asks once');
      const child = children[0];
      assert.deepEqual([child.state, child.price_minor], ['waiting', 0]);
      await sms(c, child.id, 'code 999000');
      assertText(await c.call({ action: 'getStatus', id: a.id }), 'STATUS_OK:999000');
      assert.deepEqual(await walletOf(c.user), [950, 0, 950], 'one charge, for the first code');
      const other = await customer(1000);
      assertText(await other.call({ action: 'setStatus', id: a.id, status: '3' }), 'NO_ACTIVATION');
    });

    test('setStatus 8 after the code arrived: OTP_RECEIVED, nothing refunded, the code still readable', async () => {
      const c = await customer(1000);
      const a = await bought(c, 'wa');
      await sms(c, a.verification.id, 'WhatsApp code 555-123');
      assert.deepEqual(await walletOf(c.user), [880, 0, 880]);
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '8' }), 'OTP_RECEIVED');
      assertText(await c.call({ action: 'setStatus', id: a.id, status: '-1' }), 'OTP_RECEIVED');
      assert.deepEqual(await walletOf(c.user), [880, 0, 880]);
      assertText(await c.call({ action: 'getStatus', id: a.id }), 'STATUS_OK:555123');
      const v = (await c.user.client.get(`/v1/verifications/${a.verification.id}`)).body;
      assert.equal(v.state, 'received');
      assert.equal(v.refunded, false);
    });

    test('getActiveActivations: waiting ones and received ones inside their window, exactly; NO_ACTIVATIONS when there are none', async () => {
      const c = await customer(1000);
      assert.deepEqual(assertJson(await c.call({ action: 'getActiveActivations' })), { status: 'error', error: 'NO_ACTIVATIONS' });
      const waiting = await bought(c, 'wa', { country: '16' });
      const received = await bought(c, 'testtimeout');
      await sms(c, received.verification.id, 'Your code is 1234');
      const cancelled = await bought(c, 'testtimeout');
      assertText(await c.call({ action: 'setStatus', id: cancelled.id, status: '8' }), 'ACCESS_CANCEL');
      // Bought through /v1: listed too, with an activation id of its own.
      clock.advance(1000);
      const viaApi = await c.user.client.post('/v1/verifications', { service: 'google', country: 'IN' }, { headers: { 'idempotency-key': 'api-bought' } });
      assert.equal(viaApi.status, 201);

      const list = assertJson(await c.call({ action: 'getActiveActivations' }));
      assert.equal(list.status, 'success');
      const fromApi = list.activeActivations[0];
      assert.match(fromApi.activationId, /^\d+$/);
      assert.deepEqual(list.activeActivations, [
        {
          activationId: fromApi.activationId,
          serviceCode: 'go',
          phoneNumber: viaApi.body.phone_number,
          activationCost: '0.90',
          currency: 840,
          activationStatus: '4',
          smsCode: null,
          smsText: null,
          activationTime: protocolTime(viaApi.body.created_at),
          countryCode: '22',
          countryName: 'India',
          canGetAnotherSms: '0',
        },
        {
          activationId: received.id,
          serviceCode: 'testtimeout',
          phoneNumber: received.phone,
          activationCost: '0.50',
          currency: 840,
          activationStatus: '2',
          smsCode: ['1234'],
          smsText: JSON.stringify(['Your code is 1234']),
          activationTime: protocolTime(received.verification.created_at),
          countryCode: '12',
          countryName: 'USA',
          canGetAnotherSms: '0',
        },
        {
          activationId: waiting.id,
          serviceCode: 'wa',
          phoneNumber: waiting.phone,
          activationCost: '1.20',
          currency: 840,
          activationStatus: '4',
          smsCode: null,
          smsText: null,
          activationTime: protocolTime(waiting.verification.created_at),
          countryCode: '16',
          countryName: 'United Kingdom',
          canGetAnotherSms: '0',
        },
      ]);
      assertText(await c.call({ action: 'getStatus', id: fromApi.activationId }), 'STATUS_WAIT_CODE');
      // Listing again keeps every id.
      assert.deepEqual(assertJson(await c.call({ action: 'getActiveActivations' })), list);

      // Past the deadline the received one's window is over, and the engine releases the others.
      clock.advance(601_000);
      await app.server.runtime.engine.tick();
      assert.deepEqual(assertJson(await c.call({ action: 'getActiveActivations' })), { status: 'error', error: 'NO_ACTIVATIONS' });
      assert.deepEqual(await walletOf(c.user), [950, 0, 950]);
    });

    test('getActiveActivations: a message without a code is in smsText only, after the coded ones', async () => {
      const c = await customer(1000);
      const a = await bought(c, 'testtimeout');
      await sms(c, a.verification.id, 'Tap the link to sign in');
      const [entry] = assertJson(await c.call({ action: 'getActiveActivations' })).activeActivations;
      assert.deepEqual(
        [entry.activationId, entry.activationStatus, entry.smsCode, entry.smsText],
        [a.id, '2', null, JSON.stringify(['Tap the link to sign in'])],
      );
    });

    test('getPrices: {country id: {code: {cost, count}}}, by service, by country (keyed by the id asked with), or everything', async () => {
      const c = await customer(0);
      const wa = { wa: { cost: 1.2, count: 100 } };
      assert.deepEqual(assertJson(await c.call({ action: 'getPrices', service: 'wa' })), { 12: wa, 16: wa, 22: wa, 43: wa });
      assert.deepEqual(assertJson(await c.call({ action: 'getPrices', service: 'testsuccess', country: '187' })), {
        187: { testsuccess: { cost: 0.5, count: 100 } },
      });
      const gb = assertJson(await c.call({ action: 'getPrices', country: 'GB' }));
      assert.deepEqual(Object.keys(gb), ['16']);
      assert.deepEqual(gb['16'], Object.fromEntries(Object.entries(SANDBOX_PRICES).map(([code, cost]) => [code, { cost, count: 100 }])));
      const all = assertJson(await c.call({ action: 'getPrices' }));
      assert.deepEqual(Object.keys(all).sort(), ['12', '16', '22', '43']);
      assert.deepEqual(Object.keys(all['43']).sort(), SANDBOX_CODES);
      assert.deepEqual(assertJson(await c.call({ action: 'getPrices', country: 'FR' })), {});
      assertText(await c.call({ action: 'getPrices', service: 'nosuchservice' }), 'BAD_SERVICE');
      assertText(await c.call({ action: 'getPrices', country: '9999' }), 'BAD_COUNTRY');
    });

    test('getNumbersStatus: {code_0: count} for the country asked, DEFAULT_COUNTRY without one', async () => {
      const c = await customer(0);
      const expected = Object.fromEntries(SANDBOX_CODES.map((code) => [`${code}_0`, 100]));
      const us = assertJson(await c.call({ action: 'getNumbersStatus' }));
      assert.deepEqual(Object.keys(us).sort(), Object.keys(expected).sort());
      assert.deepEqual(us, expected);
      assert.deepEqual(assertJson(await c.call({ action: 'getNumbersStatus', country: '43' })), expected);
      assert.deepEqual(assertJson(await c.call({ action: 'getNumbersStatus', country: '78' })), {});
      assertText(await c.call({ action: 'getNumbersStatus', country: 'XYZ' }), 'BAD_COUNTRY');
    });

    test('getCountries: the countries offered, keyed by protocol id', async () => {
      const c = await customer(0);
      const entry = (id: number, eng: string, iso: string) => ({ id, eng, iso, visible: 1, retry: 0, rent: 0, multiService: 0 });
      assert.deepEqual(assertJson(await c.call({ action: 'getCountries' })), {
        12: entry(12, 'USA', 'US'),
        16: entry(16, 'United Kingdom', 'GB'),
        22: entry(22, 'India', 'IN'),
        43: entry(43, 'Germany', 'DE'),
      });
    });

    test('getServicesList: {status, services: [{code, name}]} sorted by code, for a country when one is named', async () => {
      const c = await customer(0);
      const list = assertJson(await c.call({ action: 'getServicesList' }));
      assert.equal(list.status, 'success');
      assert.deepEqual(
        list.services.map((s: { code: string }) => s.code),
        SANDBOX_CODES,
      );
      assert.deepEqual(list.services.slice(0, 2), [
        { code: 'am', name: 'Amazon' },
        { code: 'ds', name: 'Discord' },
      ]);
      assert.deepEqual(
        list.services.find((s: { code: string }) => s.code === 'testsuccess'),
        { code: 'testsuccess', name: 'Test: delivers at once' },
      );
      assert.deepEqual(assertJson(await c.call({ action: 'getServicesList', country: '43' })), list);
      assert.deepEqual(assertJson(await c.call({ action: 'getServicesList', country: 'FR' })), { status: 'success', services: [] });
      assertText(await c.call({ action: 'getServicesList', country: 'nowhere' }), 'BAD_COUNTRY');
    });

    test('BAD_KEY: no key, an unknown key, a session token, a revoked key; the key may come as X-Api-Key (or X-ApiKey)', async () => {
      const c = await customer(100);
      assertText(await handlerApi(app.url, { action: 'getBalance' }), 'BAD_KEY');
      assertText(await handlerApi(app.url, { action: 'getBalance', api_key: '' }), 'BAD_KEY');
      assertText(await handlerApi(app.url, { action: 'getBalance', api_key: `${c.key}x` }), 'BAD_KEY');
      assertText(await handlerApi(app.url, { action: 'getBalance', api_key: 'nsk_not-a-key' }), 'BAD_KEY');
      // A session token is not an API key.
      assertText(await handlerApi(app.url, { action: 'getBalance', api_key: c.user.token }), 'BAD_KEY');
      assertText(await handlerApi(app.url, { action: 'getBalance' }, { headers: { 'x-api-key': c.key } }), 'ACCESS_BALANCE:1.00');
      assertText(await handlerApi(app.url, { action: 'getBalance' }, { headers: { 'X-ApiKey': c.key } }), 'ACCESS_BALANCE:1.00');
      assertText(await handlerApi(app.url, { action: 'getBalance' }, { headers: { 'x-api-key': 'nsk_wrong' } }), 'BAD_KEY');
      // The key is checked before anything else.
      assertText(await handlerApi(app.url, { action: 'getNumber', service: 'testtimeout', api_key: 'wrong' }), 'BAD_KEY');
      assert.equal(await storedVerifications(c), 0);

      assertText(await c.call({ action: 'getBalance' }), 'ACCESS_BALANCE:1.00');
      assert.equal((await c.user.client.delete(`/v1/api-keys/${c.keyId}`)).status, 204);
      assertText(await c.call({ action: 'getBalance' }), 'BAD_KEY');
      assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), 'BAD_KEY');
      assertText(await handlerApi(app.url, { action: 'getBalance' }, { headers: { 'x-api-key': c.key } }), 'BAD_KEY');
      assert.equal(await storedVerifications(c), 0);
      assert.deepEqual(await walletOf(c.user), [100, 0, 100]);
    });

    test('BAD_ACTION: no action, an unknown one, names that only look like one', async () => {
      const c = await customer(100);
      for (const action of [undefined, '', 'getbalance', 'getRentNumber', 'constructor', '__proto__', 'toString', 'getBalance ']) {
        const params: Record<string, string> = action === undefined ? {} : { action };
        const answer = await c.call(params);
        // A trailing space is not trimmed from the action: it names none.
        assertText(answer, 'BAD_ACTION');
      }
    });

    test('BAD_SERVICE and BAD_COUNTRY: nothing is bought, nothing held', async () => {
      const c = await customer(1000);
      for (const service of [undefined, '', 'nosuchservice', 'vi', 'w a', 'x'.repeat(65), "wa'--"]) {
        const params: Record<string, string> = { action: 'getNumber', ...(service === undefined ? {} : { service }) };
        assertText(await c.call(params), 'BAD_SERVICE');
      }
      for (const country of ['9999', '5', 'USA', '-1', '1.5', 'U']) {
        assertText(await c.call({ action: 'getNumber', service: 'wa', country }), 'BAD_COUNTRY');
        assertText(await c.call({ action: 'getNumberV2', service: 'wa', country }), 'BAD_COUNTRY');
      }
      assert.equal(await storedVerifications(c), 0);
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
    });

    test('NO_NUMBERS: an upstream without numbers or failing, a country the service is not offered in; nobody is charged', async () => {
      const c = await customer(1000);
      assertText(await c.call({ action: 'getNumber', service: 'testnonumbers' }), 'NO_NUMBERS');
      clock.advance(1000);
      assertText(await c.call({ action: 'getNumberV2', service: 'testprovidererror' }), 'NO_NUMBERS');
      assertText(await c.call({ action: 'getNumber', service: 'wa', country: 'FR' }), 'NO_NUMBERS');
      assertText(await c.call({ action: 'getNumber', service: 'wa', country: '78' }), 'NO_NUMBERS');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      const list = (await c.user.client.get('/v1/verifications')).body.items;
      assert.deepEqual(
        list.map((v: { service: string; state: string; refunded: boolean }) => [v.service, v.state, v.refunded]),
        [
          ['test_provider_error', 'failed', true],
          ['test_no_numbers', 'failed', true],
        ],
      );
    });

    test('NO_BALANCE: the available balance is short; nothing stored', async () => {
      const c = await customer(100);
      await bought(c, 'testtimeout');
      assertText(await c.call({ action: 'getNumber', service: 'wa' }), 'NO_BALANCE');
      assertText(await c.call({ action: 'getNumberV2', service: 'wa' }), 'NO_BALANCE');
      assert.equal(await storedVerifications(c), 1);
      assert.deepEqual(await walletOf(c.user), [100, 50, 50]);
      assertText(await (await customer(0)).call({ action: 'getNumber', service: 'testsuccess' }), 'NO_BALANCE');
    });

    test('WRONG_MAX_PRICE:<price>: maxPrice (or max_price) below the price, or unreadable; at the price it buys', async () => {
      const c = await customer(1000);
      assertText(await c.call({ action: 'getNumber', service: 'wa', maxPrice: '1.19' }), 'WRONG_MAX_PRICE:1.20');
      assertText(await c.call({ action: 'getNumberV2', service: 'wa', max_price: '1.199' }), 'WRONG_MAX_PRICE:1.20');
      for (const maxPrice of ['abc', '-5', '1e3', '0']) {
        assertText(await c.call({ action: 'getNumber', service: 'testsuccess', maxPrice }), 'WRONG_MAX_PRICE:0.50');
      }
      assert.equal(await storedVerifications(c), 0);
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      await bought(c, 'wa', { maxPrice: '1.2' });
      await bought(c, 'wa', { maxPrice: '5' });
      assert.deepEqual(await walletOf(c.user), [1000, 240, 760]);
    });

    test('WRONG_ACTIVATION_ID for an id that is no id, NO_ACTIVATION for one that is not yours', async () => {
      const c = await customer(100);
      for (const action of ['getStatus', 'getStatusV2']) {
        for (const id of [undefined, 'abc', '1.5', '-3', '1234567890123456', 'ffffffff-ffff-ffff-ffff']) {
          assertText(await c.call({ action, ...(id === undefined ? {} : { id }) }), 'WRONG_ACTIVATION_ID');
        }
        assertText(await c.call({ action, id: '999999999' }), 'NO_ACTIVATION');
        assertText(await c.call({ action, id: '00000000-0000-4000-8000-000000000000' }), 'NO_ACTIVATION');
      }
      assertText(await c.call({ action: 'setStatus', status: '8', id: 'abc' }), 'WRONG_ACTIVATION_ID');
      assertText(await c.call({ action: 'setStatus', status: '8', id: '999999999' }), 'NO_ACTIVATION');
    });

    test('BAD_STATUS: a status the protocol does not have; checked before the activation', async () => {
      const c = await customer(100);
      const a = await bought(c, 'testtimeout');
      for (const status of [undefined, '', '2', '7', 'cancel', '8.0', '08x']) {
        assertText(await c.call({ action: 'setStatus', id: a.id, ...(status === undefined ? {} : { status }) }), 'BAD_STATUS');
      }
      assertText(await c.call({ action: 'setStatus', id: '999999999', status: '2' }), 'BAD_STATUS');
      assert.deepEqual(await walletOf(c.user), [100, 50, 50]);
    });

    test("security: another customer's activation is unknown to you, by activation id and by verification id; nothing of theirs changes", async () => {
      const owner = await customer(1000);
      const other = await customer(1000);
      const a = await bought(owner, 'testtimeout');
      for (const id of [a.id, a.verification.id]) {
        assertText(await other.call({ action: 'getStatus', id }), 'NO_ACTIVATION');
        assertText(await other.call({ action: 'getStatusV2', id }), 'NO_ACTIVATION');
        for (const status of ['1', '3', '6', '8', '-1']) assertText(await other.call({ action: 'setStatus', id, status }), 'NO_ACTIVATION');
      }
      assert.deepEqual(assertJson(await other.call({ action: 'getActiveActivations' })), { status: 'error', error: 'NO_ACTIVATIONS' });
      assertText(await owner.call({ action: 'getStatus', id: a.id }), 'STATUS_WAIT_CODE');
      assert.deepEqual(await walletOf(owner.user), [1000, 50, 950]);
      assert.deepEqual(await walletOf(other.user), [1000, 0, 1000]);
      assert.equal((await owner.user.client.get(`/v1/verifications/${a.verification.id}`)).body.state, 'waiting');
    });

    test('POST with a form body or a JSON body, the body over the query string; a repeated parameter counts by its last value', async () => {
      const c = await customer(1000);
      assertText(await c.call({ action: 'getBalance' }, { method: 'POST' }), 'ACCESS_BALANCE:10.00');
      assertText(
        await handlerApi(app.url, {}, { method: 'POST', rawBody: JSON.stringify({ api_key: c.key, action: 'getBalance' }), headers: { 'content-type': 'application/json' } }),
        'ACCESS_BALANCE:10.00',
      );
      // A form sent without a content type (some clients do) is still read as one.
      const untyped = await fetch(new URL(HANDLER_PATH, app.url), { method: 'POST', body: new URLSearchParams({ api_key: c.key, action: 'getBalance' }).toString() });
      assertText({ status: untyped.status, contentType: untyped.headers.get('content-type') ?? '', text: await untyped.text() }, 'ACCESS_BALANCE:10.00');
      // The body's action wins over the query's.
      const url = new URL(`${HANDLER_PATH}?action=getNumber&service=testtimeout`, app.url);
      const mixed = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `api_key=${c.key}&action=getBalance` });
      assert.equal(await mixed.text(), 'ACCESS_BALANCE:10.00');
      const repeated = await fetch(new URL(`${HANDLER_PATH}?api_key=${c.key}&action=getNumber&action=getBalance`, app.url));
      assert.equal(await repeated.text(), 'ACCESS_BALANCE:10.00');
      assert.equal(await storedVerifications(c), 0);
    });

    test('outside the JSON API: no /openapi.json entry, no HEAD (it would buy unseen), answers never cached, and the API key never logged', async () => {
      const c = await customer(1000);
      const openapi = await call(app.url, 'GET', '/openapi.json');
      assert.equal(openapi.status, 200);
      assert.deepEqual(
        Object.keys(openapi.body.paths).filter((p) => p.includes('stubs') || p.includes('handler_api')),
        [],
      );
      const head = await fetch(new URL(`${HANDLER_PATH}?api_key=${c.key}&action=getNumber&service=testtimeout`, app.url), { method: 'HEAD' });
      assert.equal(head.status, 404);
      assert.equal(await storedVerifications(c), 0);
      const answer = await fetch(new URL(`${HANDLER_PATH}?api_key=${c.key}&action=getBalance`, app.url));
      assert.equal(answer.headers.get('cache-control'), 'no-store');
      assert.equal(await answer.text(), 'ACCESS_BALANCE:10.00');
      const logged = logLines.filter((line) => line.includes(HANDLER_PATH));
      assert.ok(logged.length > 0, 'the requests were logged');
      assert.ok(logged.some((line) => line.includes('api_key=***')), 'with the key masked');
      assert.deepEqual(
        logLines.filter((line) => line.includes(c.key)),
        [],
      );
    });
  });

  describe(`SMS-Activate protocol: the purchase limits of /v1 [${engine}]`, () => {
    let app: TestApp;
    let admin: TestUser;
    const clock = new ManualClock('2026-03-01T12:00:00Z');

    before(async () => {
      app = await startTestApp({ engine, worker: false, clock, env: { MAX_ACTIVE_VERIFICATIONS: '2', PURCHASES_PER_MINUTE: '3' } });
      admin = await login(app.url, app.admin.email, app.admin.password);
    });
    after(() => app.close());

    test('TOO_MANY_ACTIVE_RENTALS at MAX_ACTIVE_VERIFICATIONS, RATE_LIMITED past PURCHASES_PER_MINUTE; a refusal holds nothing', async () => {
      const c = await protocolCustomer(app, admin, 1000);
      const first = assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:(\d+):\d+$/);
      assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:\d+:\d+$/);
      assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), 'TOO_MANY_ACTIVE_RENTALS');
      assertText(await c.call({ action: 'getNumberV2', service: 'testtimeout' }), 'TOO_MANY_ACTIVE_RENTALS');
      assert.deepEqual(await walletOf(c.user), [1000, 100, 900]);
      assertText(await c.call({ action: 'setStatus', id: first.split(':')[1]!, status: '8' }), 'ACCESS_CANCEL');
      assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:\d+:\d+$/);
      assertText(await c.call({ action: 'setStatus', id: first.split(':')[1]!, status: '8' }), 'ACCESS_CANCEL');
      // Three purchases in this minute: the fourth is refused whatever is active.
      const active = assertJson(await c.call({ action: 'getActiveActivations' })).activeActivations;
      for (const a of active) assertText(await c.call({ action: 'setStatus', id: a.activationId, status: '8' }), 'ACCESS_CANCEL');
      assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), 'RATE_LIMITED');
      assert.deepEqual(await walletOf(c.user), [1000, 0, 1000]);
      clock.advance(61_000);
      assertText(await c.call({ action: 'getNumber', service: 'testtimeout' }), /^ACCESS_NUMBER:\d+:\d+$/);
    });
  });
}
