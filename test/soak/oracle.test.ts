import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Answer, CancelAnswer, PurchaseAnswer, SmsAnswer } from '../../scripts/soak/answers.ts';
import { judge, type FinalVerification, type FinalWallet } from '../../scripts/soak/oracle.ts';

/** The oracle holds what clients were told against the final rows; every rule, broken once. */
const T = Date.parse('2026-03-01T12:00:00Z');
const alice = 'user-alice';

function row(id: string, key: string, over: Partial<FinalVerification> = {}): FinalVerification {
  return { id, userId: alice, key, service: 'test_success', state: 'received', priceMinor: 50, expiresAt: T + 20_000, outcome: 'posted', chargedMinor: 50, charges: 1, ...over };
}

function bought(key: string, over: Partial<PurchaseAnswer> = {}): PurchaseAnswer {
  return { kind: 'purchase', userId: alice, key, service: 'test_success', variant: 'first', sentAt: T, doneAt: T + 50, status: 201, state: 'waiting', ...over };
}

function cancel(id: string, over: Partial<CancelAnswer> = {}): CancelAnswer {
  return { kind: 'cancel', userId: alice, verificationId: id, group: 1, sentAt: T + 1_000, doneAt: T + 1_100, status: 200, state: 'cancelled', ...over };
}

function sms(id: string, over: Partial<SmsAnswer> = {}): SmsAnswer {
  return { kind: 'sms', userId: alice, verificationId: id, expiresAt: T + 20_000, sentAt: T + 18_000, doneAt: T + 18_100, status: 200, state: 'received', ...over };
}

/** A healthy small run: one received, one cancelled by three concurrent cancels, one failed, one refused. */
function healthy(): { answers: Answer[]; rows: FinalVerification[]; wallets: FinalWallet[]; funding: Map<string, number> } {
  return {
    answers: [
      bought('k1', { verificationId: 'v1' }),
      bought('k1', { verificationId: 'v1', variant: 'duplicate' }),
      bought('k1', { variant: 'duplicate', status: 409, code: 'idempotency_in_progress', state: undefined }),
      bought('k1', { verificationId: 'v1', variant: 'later', sentAt: T + 30_000, state: 'received' }),
      bought('k1', { verificationId: 'v1', variant: 'mismatch', status: 422, code: 'idempotency_key_reused', state: undefined }),
      sms('v1'),
      bought('k2', { verificationId: 'v2', service: 'test_timeout' }),
      cancel('v2'),
      cancel('v2'),
      cancel('v2'),
      bought('k3', { verificationId: 'v3', service: 'test_no_numbers', status: 503, code: 'no_numbers', state: undefined }),
      bought('k4', { status: 402, code: 'insufficient_funds', state: undefined }),
      bought('k5', { status: 'error', state: undefined }),
    ],
    rows: [
      row('v1', 'k1'),
      row('v2', 'k2', { service: 'test_timeout', state: 'cancelled', outcome: 'voided', chargedMinor: 0, charges: 0 }),
      row('v3', 'k3', { service: 'test_no_numbers', state: 'failed', outcome: 'voided', chargedMinor: 0, charges: 0 }),
    ],
    wallets: [{ userId: alice, postedMinor: 950, heldMinor: 0 }],
    funding: new Map([[alice, 1000]]),
  };
}

const kinds = (run: ReturnType<typeof healthy>) => judge(run.answers, run.rows, run.wallets, run.funding).map((v) => `${v.kind} ${v.subject}`);

describe('soak oracle', () => {
  test('a run whose rows agree with every answer has no violation', () => {
    assert.deepEqual(kinds(healthy()), []);
  });

  test('answers for one key naming two verifications, or with two outcomes', () => {
    const run = healthy();
    run.answers.push(bought('k1', { verificationId: 'v2', variant: 'later' }), bought('k2', { verificationId: 'v2', variant: 'later', status: 202 }));
    assert.deepEqual(kinds(run), [
      'answer_names_other_verification v2',
      'key_answered_with_two_verifications user-alice|k1',
      'key_replayed_differently user-alice|k2',
    ]);
  });

  test('an answer naming a verification that does not exist', () => {
    const run = healthy();
    run.answers.push(bought('k6', { verificationId: 'v-missing' }));
    assert.deepEqual(kinds(run), ['answer_names_missing_verification v-missing']);
  });

  test('a refused purchase that left a row, and a 409 in progress with no row', () => {
    const run = healthy();
    run.rows.push(row('v4', 'k4', { state: 'expired', outcome: 'expired', chargedMinor: 0, charges: 0 }));
    run.answers.push(bought('k7', { status: 409, code: 'idempotency_in_progress', state: undefined }));
    assert.deepEqual(kinds(run), ['refused_purchase_left_row v4', 'in_progress_without_row user-alice|k7']);
  });

  test('a 402 followed by a successful replay of the same key is not a violation', () => {
    const run = healthy();
    run.answers.push(bought('k4', { verificationId: 'v4', variant: 'later', service: 'test_timeout' }));
    run.rows.push(row('v4', 'k4', { service: 'test_timeout', state: 'expired', outcome: 'expired', chargedMinor: 0, charges: 0 }));
    assert.deepEqual(kinds(run), []);
  });

  test('the same key with a different body served instead of refused', () => {
    const run = healthy();
    run.answers.push(bought('k2', { verificationId: 'v2', variant: 'mismatch', service: 'test_success' }));
    assert.deepEqual(kinds(run), ['reused_key_served v2']);
  });

  test('a 201 that ended failed, and a failed purchase that was charged', () => {
    const run = healthy();
    run.rows[1] = row('v2', 'k2', { service: 'test_timeout', state: 'failed', outcome: 'voided', chargedMinor: 0, charges: 0 });
    run.answers = run.answers.filter((a) => a.kind !== 'cancel');
    run.rows[2] = row('v3', 'k3', { service: 'test_no_numbers', state: 'received', outcome: 'posted' });
    run.wallets = [{ userId: alice, postedMinor: 900, heldMinor: 0 }];
    assert.deepEqual(kinds(run), ['answered_201_never_assigned v2', 'failed_answer_not_released v3']);
  });

  test('a cancel answered 200 that ended received, and a 409 showing a state the row left', () => {
    const run = healthy();
    run.answers.push(bought('k8', { verificationId: 'v8' }), cancel('v8', { group: 2 }));
    run.answers.push(bought('k9', { verificationId: 'v9' }), cancel('v9', { group: 3, status: 409, code: 'invalid_state', state: 'received' }));
    run.rows.push(row('v8', 'k8'), row('v9', 'k9', { state: 'expired', outcome: 'expired', chargedMinor: 0, charges: 0 }));
    run.wallets = [{ userId: alice, postedMinor: 900, heldMinor: 0 }];
    assert.deepEqual(kinds(run), ['cancel_200_not_refunded v8', 'cancel_409_state_changed v9']);
  });

  test('an SMS sent after the deadline and answered received, and an SMS answer the row contradicts', () => {
    const run = healthy();
    run.answers.push(bought('k8', { verificationId: 'v8', service: 'test_timeout' }), sms('v8', { sentAt: T + 21_500, doneAt: T + 21_600 }));
    run.rows.push(row('v8', 'k8', { service: 'test_timeout' }));
    run.answers.push(bought('k9', { verificationId: 'v9', service: 'test_timeout' }), sms('v9'));
    run.rows.push(row('v9', 'k9', { service: 'test_timeout', state: 'expired', outcome: 'expired', chargedMinor: 0, charges: 0 }));
    run.wallets = [{ userId: alice, postedMinor: 900, heldMinor: 0 }];
    assert.deepEqual(kinds(run), ['late_sms_charged v8', 'sms_answer_contradicts_row v9']);
  });

  test('test_late captured, a received verification charged twice, a refunded one charged', () => {
    const run = healthy();
    run.answers.push(bought('k8', { verificationId: 'v8', service: 'test_late' }), bought('k9', { verificationId: 'v9' }));
    run.rows.push(row('v8', 'k8', { service: 'test_late' }), row('v9', 'k9', { chargedMinor: 100, charges: 2 }));
    run.rows[1] = { ...run.rows[1]!, chargedMinor: 50, charges: 1 };
    run.wallets = [{ userId: alice, postedMinor: 850, heldMinor: 0 }];
    // Each of the three cancels answered 200 was told a refund that the charge took back.
    assert.deepEqual(kinds(run), [
      'cancel_200_not_refunded v2',
      'cancel_200_not_refunded v2',
      'cancel_200_not_refunded v2',
      'refunded_but_charged v2',
      'test_late_charged v8',
      'received_not_charged_its_price v9',
    ]);
  });

  test('a verification still waiting after the drain, a wallet off by a cent, and a 500', () => {
    const run = healthy();
    run.answers.push(bought('k8', { verificationId: 'v8' }), cancel('v8', { group: 2, status: 500, code: 'internal_error', state: undefined }));
    run.rows.push(row('v8', 'k8', { state: 'waiting', outcome: null, chargedMinor: 0, charges: 0 }));
    run.wallets = [{ userId: alice, postedMinor: 949, heldMinor: 50 }];
    assert.deepEqual(kinds(run), ['server_error_500 v8', 'still_active_after_drain v8', 'wallet_not_funding_minus_captured user-alice']);
  });
});
