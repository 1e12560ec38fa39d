import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { checkTarget, parseWebhookUrl, refusedAddress, RefusedUrlError } from '../../src/outbound-webhooks/address-policy.ts';
import { newSigningSecret, signingSecrets } from '../../src/outbound-webhooks/endpoints.ts';
import { JITTER, MAX_ATTEMPTS, RETRY_DELAYS_MS, retryDelayMs } from '../../src/outbound-webhooks/schedule.ts';
import { attemptDelivery, signatureHeaders } from '../../src/outbound-webhooks/sender.ts';

const strict = { allowHttp: false, allowPrivate: false };

describe('where a webhook may point', () => {
  test('loopback, private, link-local (metadata), unique-local, CGNAT, unspecified and mapped addresses are refused', () => {
    for (const address of ['127.0.0.1', '::1', '169.254.169.254', '10.0.0.1', '172.16.5.4', '192.168.1.1', 'fd00:ec2::254', 'fe80::1', '100.100.100.200', '0.0.0.0', '::', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '224.0.0.1', '255.255.255.255']) {
      assert.ok(refusedAddress(address, strict), `${address} refused`);
      assert.equal(refusedAddress(address, { allowHttp: false, allowPrivate: true }), undefined, `${address} allowed with WEBHOOK_ALLOW_PRIVATE`);
    }
    for (const address of ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946', '::ffff:93.184.216.34', '1.1.1.1']) {
      assert.equal(refusedAddress(address, strict), undefined, `${address} allowed`);
    }
  });

  test('https only unless WEBHOOK_ALLOW_HTTP; no credentials, no fragment', () => {
    assert.throws(() => parseWebhookUrl('http://hooks.example.com/x', strict), /must be an https URL/);
    assert.equal(parseWebhookUrl('http://hooks.example.com/x', { allowHttp: true, allowPrivate: false }).protocol, 'http:');
    assert.throws(() => parseWebhookUrl('ftp://hooks.example.com/x', { allowHttp: true, allowPrivate: false }), RefusedUrlError);
    assert.throws(() => parseWebhookUrl('https://user:pw@hooks.example.com/x', strict), /credentials/);
    assert.throws(() => parseWebhookUrl('https://hooks.example.com/x#y', strict), /fragment/);
    assert.throws(() => parseWebhookUrl('not a url', strict), /not a valid URL/);
  });

  test('a name is judged by every address it resolves to; literals, localhost and [::1] without asking', async () => {
    const resolver = (answers: Record<string, string[]>) => async (host: string) => {
      if (!(host in answers)) throw new Error(`ENOTFOUND ${host}`);
      return answers[host]!;
    };
    const dns = resolver({ 'hooks.example.com': ['93.184.216.34'], 'internal.example.com': ['10.0.0.1'], 'mixed.example.com': ['93.184.216.34', '127.0.0.1'] });
    assert.equal(await checkTarget(new URL('https://hooks.example.com/x'), strict, dns), '93.184.216.34');
    await assert.rejects(checkTarget(new URL('https://internal.example.com/x'), strict, dns), /internal\.example\.com resolves to 10\.0\.0\.1 is a private address/);
    await assert.rejects(checkTarget(new URL('https://mixed.example.com/x'), strict, dns), /resolves to 127\.0\.0\.1 is a loopback address/);
    await assert.rejects(checkTarget(new URL('https://[::1]/x'), strict, dns), /::1 is a loopback address/);
    await assert.rejects(checkTarget(new URL('https://169.254.169.254/latest/meta-data/'), strict, dns), /linkLocal/);
    await assert.rejects(checkTarget(new URL('https://api.localhost/x'), strict, dns), /localhost/);
    await assert.rejects(checkTarget(new URL('https://nowhere.example.com/x'), strict, dns), /could not be resolved/);
    assert.equal(await checkTarget(new URL('https://nowhere.example.com/x'), strict, dns, 'accept'), undefined, 'at save time an unresolved name waits for the send-time check');
  });

  test('at send time a name that now resolves to a private address is not called', async () => {
    let asked = 0;
    const outcome = await attemptDelivery({
      url: 'https://rebinding.example.com/hooks',
      eventId: 'evt_0',
      body: '{}',
      secrets: [newSigningSecret()],
      rules: strict,
      resolve: async () => {
        asked++;
        return ['10.0.0.1'];
      },
      timeoutMs: 1000,
      maxBytes: 100,
    });
    assert.equal(asked, 1);
    assert.deepEqual([outcome.succeeded, outcome.status], [false, null]);
    assert.match(outcome.error ?? '', /^not sent: points to a refused address: rebinding\.example\.com resolves to 10\.0\.0\.1/);
  });
});

describe('one deadline per attempt', () => {
  test('a resolver that never answers costs the attempt its timeout, nothing more', async () => {
    const outcome = await attemptDelivery({
      url: 'https://slow-dns.example.com/hooks',
      eventId: 'evt_0',
      body: '{}',
      secrets: [newSigningSecret()],
      rules: strict,
      resolve: () => new Promise<string[]>(() => {}),
      timeoutMs: 200,
      maxBytes: 100,
    });
    assert.deepEqual([outcome.succeeded, outcome.error], [false, 'not sent: timed out after 200 ms']);
  });
});

describe('signing', () => {
  test('Standard Webhooks headers verify with the standardwebhooks package; during a rotation both secrets sign', () => {
    const [current, previous] = [newSigningSecret(), newSigningSecret()];
    assert.match(current, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const body = JSON.stringify({ id: 'evt_1', type: 'wallet.credited', created_at: '2026-03-01T12:00:00.000Z', data: {} });
    const headers = signatureHeaders('evt_1', body, [current, previous], new Date());
    assert.match(headers['webhook-signature']!, /^v1,[A-Za-z0-9+/]+=* v1,[A-Za-z0-9+/]+=*$/);
    assert.deepEqual(new Webhook(current).verify(body, headers), JSON.parse(body));
    assert.deepEqual(new Webhook(previous).verify(body, headers), JSON.parse(body));
    assert.throws(() => new Webhook(newSigningSecret()).verify(body, headers), /No matching signature/);
    assert.throws(() => new Webhook(current).verify(body.replace('wallet', 'purse'), headers), /No matching signature/);
  });

  test('the previous secret signs until its overlap ends', () => {
    const now = new Date('2026-03-01T12:00:00Z');
    const endpoint = { secret: 'whsec_new', previousSecret: 'whsec_old', previousSecretUntil: new Date(now.getTime() + 1000) };
    assert.deepEqual(signingSecrets(endpoint, now), ['whsec_new', 'whsec_old']);
    assert.deepEqual(signingSecrets(endpoint, new Date(now.getTime() + 1000)), ['whsec_new']);
    assert.deepEqual(signingSecrets({ secret: 'whsec_new', previousSecret: null, previousSecretUntil: null }, now), ['whsec_new']);
  });
});

describe('the retry schedule', () => {
  test('exponential, capped, at least 24 hours for every jitter draw, and jitter only lengthens a wait', () => {
    const total = (random: number) => RETRY_DELAYS_MS.reduce((sum, _, i) => sum + retryDelayMs(i + 1, random)!, 0);
    assert.ok(total(0) >= 24 * 3_600_000, `shortest schedule ${total(0)} ms`);
    assert.ok(total(0.999999) <= total(0) * (1 + JITTER));
    for (let i = 1; i < RETRY_DELAYS_MS.length; i++) assert.ok(RETRY_DELAYS_MS[i]! >= RETRY_DELAYS_MS[i - 1]!, 'never shorter');
    assert.equal(retryDelayMs(1, 0), 5000);
    assert.equal(retryDelayMs(1, 0.5), 5500);
    assert.equal(retryDelayMs(MAX_ATTEMPTS - 1, 0), 8 * 3_600_000);
    assert.equal(retryDelayMs(MAX_ATTEMPTS, 0), undefined, 'the schedule ends');
    assert.equal(MAX_ATTEMPTS, 12);
  });
});
