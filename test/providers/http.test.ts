import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decimalToMinor, minorToDecimalString, parseRetryAfter, sendUpstream } from '../../src/providers/http.ts';
import { ProviderError } from '../../src/providers/provider.ts';

const now = () => new Date('2026-03-01T12:00:00Z');

async function closedPortUrl(): Promise<URL> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return new URL(`http://127.0.0.1:${port}/`);
}

describe('decimal money at the wire edge', () => {
  test('decimals become integer minor units without float arithmetic', () => {
    assert.equal(decimalToMinor('12.50', 'up'), 1250);
    assert.equal(decimalToMinor(0.75, 'up'), 75);
    assert.equal(decimalToMinor(2.95, 'down'), 295);
    assert.equal(decimalToMinor(0.1 + 0.2, 'down'), 30); // 0.30000000000000004 → 30, not 31
    assert.equal(decimalToMinor(0.1 + 0.2, 'up'), 31); // a fraction of a cent of cost rounds up
    assert.equal(decimalToMinor('3', 'up'), 300);
    assert.equal(decimalToMinor('0.125', 'up'), 13);
    assert.equal(decimalToMinor('0.125', 'down'), 12);
    assert.equal(decimalToMinor('0.120', 'up'), 12);
  });

  test('anything that is not a plain non-negative decimal is refused', () => {
    for (const bad of ['', 'abc', '1,5', '-1', '1e3', '0x10', ' 1.2.3']) assert.equal(decimalToMinor(bad, 'up'), null, bad);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, 1e-7]) assert.equal(decimalToMinor(bad, 'up'), null, String(bad));
  });

  test('minor units become decimal strings for caps sent upstream', () => {
    assert.equal(minorToDecimalString(295), '2.95');
    assert.equal(minorToDecimalString(5), '0.05');
    assert.equal(minorToDecimalString(100), '1.00');
    assert.throws(() => minorToDecimalString(1.5), RangeError);
  });
});

describe('Retry-After', () => {
  test('delta seconds and HTTP dates', () => {
    assert.equal(parseRetryAfter('7', now()), 7);
    assert.equal(parseRetryAfter('Sun, 01 Mar 2026 12:00:30 GMT', now()), 30);
    assert.equal(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', now()), 0);
    assert.equal(parseRetryAfter('soon', now()), undefined);
    assert.equal(parseRetryAfter(null, now()), undefined);
  });
});

describe('transport failures', () => {
  test('a refused connection is definite: the request never left', async () => {
    const url = await closedPortUrl();
    const error = await sendUpstream({ method: 'POST', url, timeoutMs: 1000, mutating: true, label: 'probe', now }).catch((e: unknown) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.kind, 'definite');
    assert.equal(error.code, 'unavailable');
  });

  test('5xx is ambiguous for writes and definite for reads; error messages never carry the URL', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(503, { 'Retry-After': '12' });
      res.end('down');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const url = new URL(`http://127.0.0.1:${port}/?api_key=secret-key`);
    try {
      const write = await sendUpstream({ method: 'GET', url, timeoutMs: 1000, mutating: true, label: 'buy', now }).catch((e: unknown) => e);
      const read = await sendUpstream({ method: 'GET', url, timeoutMs: 1000, mutating: false, label: 'status', now }).catch((e: unknown) => e);
      assert.ok(write instanceof ProviderError && read instanceof ProviderError);
      assert.deepEqual([write.kind, write.code, write.status, write.retryAfterSeconds], ['ambiguous', 'server_error', 503, 12]);
      assert.deepEqual([read.kind, read.code], ['definite', 'server_error']);
      assert.doesNotMatch(write.message, /secret-key/);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
