import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backoffMs,
  canCancel,
  deadlineFor,
  holdMoveFor,
  isRefunded,
  isTerminal,
} from '../../src/verifications/transitions.ts';
import { decideReplay, fingerprint, parseIdempotencyKey } from '../../src/verifications/idempotency.ts';
import { verificationStates, type VerificationState } from '../../src/verifications/schema.ts';
import { isDomainError } from '../../src/errors.ts';

describe('verification state machine', () => {
  const allowed: Record<string, string> = {
    'pending→waiting': 'keep',
    'pending→failed': 'void',
    'waiting→received': 'post',
    'waiting→cancelled': 'void',
    'waiting→expired': 'expire',
  };

  test('exactly the five transitions of the state machine exist, each moving the hold one fixed way', () => {
    for (const from of verificationStates) {
      for (const to of verificationStates) {
        assert.equal(holdMoveFor(from, to), allowed[`${from}→${to}`], `${from} → ${to}`);
      }
    }
  });

  test('terminal states have no way out; pending and waiting are the active states', () => {
    const terminal = verificationStates.filter(isTerminal);
    assert.deepEqual(terminal, ['received', 'cancelled', 'expired', 'failed']);
    assert.deepEqual(verificationStates.filter((state) => !isTerminal(state)), ['pending', 'waiting']);
  });

  test('no transition ever leaves a terminal state, so a money outcome never changes', () => {
    for (const from of verificationStates.filter(isTerminal)) {
      for (const to of verificationStates) assert.equal(holdMoveFor(from, to), undefined);
    }
  });

  test('refunded exactly for cancelled, expired and failed; the hold move of the way in agrees', () => {
    const refunded = verificationStates.filter(isRefunded);
    assert.deepEqual(refunded, ['cancelled', 'expired', 'failed']);
    for (const [edge, move] of Object.entries(allowed)) {
      const to = edge.split('→')[1] as VerificationState;
      if (isRefunded(to)) assert.ok(move === 'void' || move === 'expire', edge);
      if (to === 'received') assert.equal(move, 'post');
    }
  });

  test('only a waiting verification can be cancelled', () => {
    assert.deepEqual(verificationStates.filter(canCancel), ['waiting']);
  });

  test('deadline: the earlier of our TTL and the upstream end', () => {
    const created = new Date('2026-03-01T12:00:00Z');
    assert.equal(deadlineFor(created, 1200, null).toISOString(), '2026-03-01T12:20:00.000Z');
    assert.equal(deadlineFor(created, 1200, new Date('2026-03-01T12:15:00Z')).toISOString(), '2026-03-01T12:15:00.000Z');
    assert.equal(deadlineFor(created, 1200, new Date('2026-03-01T13:00:00Z')).toISOString(), '2026-03-01T12:20:00.000Z');
  });

  test('backoff doubles from 2 s and is capped at 5 minutes', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 8, 9, 50].map(backoffMs),
      [2000, 2000, 4000, 8000, 16000, 256000, 300000, 300000],
    );
    for (let f = 0; f < 40; f++) assert.ok(backoffMs(f + 1) >= backoffMs(f));
  });
});

describe('Idempotency-Key rules', () => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
      return undefined;
    } catch (error) {
      assert.ok(isDomainError(error), String(error));
      return `${error.code}/${error.status}`;
    }
  };

  test('missing key → 400 idempotency_key_missing', () => {
    assert.equal(code(() => parseIdempotencyKey(undefined)), 'idempotency_key_missing/400');
    assert.equal(code(() => parseIdempotencyKey('')), 'idempotency_key_missing/400');
  });

  test('1–255 printable ASCII characters; anything else → 400 validation_failed', () => {
    assert.equal(parseIdempotencyKey('a'), 'a');
    assert.equal(parseIdempotencyKey('x'.repeat(255)), 'x'.repeat(255));
    assert.equal(parseIdempotencyKey('order-42_!~'), 'order-42_!~');
    assert.equal(parseIdempotencyKey(['first', 'second']), 'first');
    for (const bad of ['x'.repeat(256), 'has space', 'tab\there', 'naïve', 'line\nbreak', '\u0000']) {
      assert.equal(code(() => parseIdempotencyKey(bad)), 'validation_failed/400', JSON.stringify(bad));
    }
  });

  test('fingerprint: stable under key order, sensitive to every field, undefined = null', () => {
    const a = fingerprint({ service: 'whatsapp', country: 'US', max_price_minor: null });
    assert.equal(a, fingerprint({ max_price_minor: null, country: 'US', service: 'whatsapp' }));
    assert.equal(a, fingerprint({ service: 'whatsapp', country: 'US', max_price_minor: undefined }));
    assert.notEqual(a, fingerprint({ service: 'telegram', country: 'US', max_price_minor: null }));
    assert.notEqual(a, fingerprint({ service: 'whatsapp', country: 'GB', max_price_minor: null }));
    assert.notEqual(a, fingerprint({ service: 'whatsapp', country: 'US', max_price_minor: 120 }));
    assert.notEqual(
      fingerprint({ service: 'whatsapp', country: 'US', max_price_minor: 120 }),
      fingerprint({ service: 'whatsapp', country: 'US', max_price_minor: '120' }),
    );
    assert.match(a, /^[0-9a-f]{64}$/);
  });

  test('replay decision: mismatch first, then in progress while the purchase call may still run, else replay', () => {
    const now = new Date('2026-03-01T12:00:00Z');
    const later = new Date(now.getTime() + 12_500);
    const base = { fingerprint: 'f', state: 'pending', responseStatus: null, purchaseUntil: later };
    assert.deepEqual(decideReplay(base, 'g', now), { kind: 'mismatch' });
    assert.deepEqual(decideReplay(base, 'f', now), { kind: 'in_progress', retryAfterSeconds: 13 });
    assert.deepEqual(decideReplay({ ...base, purchaseUntil: new Date(now.getTime() + 10) }, 'f', now), {
      kind: 'in_progress',
      retryAfterSeconds: 1,
    });
    // The call's window is over: recovery owns it; the customer gets the pending answer again.
    assert.deepEqual(decideReplay({ ...base, purchaseUntil: now }, 'f', now), { kind: 'replay' });
    assert.deepEqual(decideReplay({ ...base, purchaseUntil: null }, 'f', now), { kind: 'replay' });
    // An answer was already given (202 for an ambiguous purchase): replay it.
    assert.deepEqual(decideReplay({ ...base, responseStatus: 202 }, 'f', now), { kind: 'replay' });
    for (const state of ['waiting', 'received', 'failed', 'cancelled', 'expired']) {
      assert.deepEqual(decideReplay({ ...base, state }, 'f', now), { kind: 'replay' }, state);
      assert.deepEqual(decideReplay({ ...base, state }, 'other', now), { kind: 'mismatch' }, state);
    }
  });
});
