import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { settlementAfterCancel } from '../../src/verifications/settlement.ts';

describe('what a cancel answer leaves owed upstream (the one mapping)', () => {
  const now = new Date('2026-03-01T12:00:00Z');
  const retryAt = new Date('2026-03-01T12:00:08Z');

  test('cancelled or gone: nothing is owed; already received: the order completed', () => {
    assert.deepEqual(settlementAfterCancel({ outcome: 'cancelled' }, now, retryAt), { status: 'cancelled', nextAt: null });
    assert.deepEqual(settlementAfterCancel({ outcome: 'gone' }, now, retryAt), { status: 'cancelled', nextAt: null });
    assert.deepEqual(settlementAfterCancel({ outcome: 'already_received' }, now, retryAt), { status: 'completed', nextAt: null });
  });

  test('too early: still owed, asked again when the upstream said; no answer: owed, at the retry time', () => {
    assert.deepEqual(settlementAfterCancel({ outcome: 'too_early', retryAfterSeconds: 90 }, now, retryAt), {
      status: 'cancel_owed',
      nextAt: new Date('2026-03-01T12:01:30Z'),
    });
    assert.deepEqual(settlementAfterCancel('failed', now, retryAt), { status: 'cancel_owed', nextAt: retryAt });
  });
});
