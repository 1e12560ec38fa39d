import type { Answer, CancelAnswer, PurchaseAnswer, SmsAnswer } from './answers.ts';
import { isRefusal } from './customers.ts';

/**
 * The oracle: what every client was told, held against the rows the run left behind. Each rule is
 * a sentence a customer could check with their own records:
 *
 *   - an answer that names a verification names one that exists, is theirs, and was bought with
 *     that Idempotency-Key;
 *   - every answer for one key (first try, concurrent copies, later replays) that names a
 *     verification names the same one, with the same status and code;
 *   - a key whose every answer refused the purchase (400, 402, 422, 429, 503 without a
 *     verification) left no row; a key answered 409 idempotency_in_progress has one;
 *   - the same key with a different body is refused (422), never served;
 *   - a 201 was a number assigned: it never ends pending or failed; a failed purchase (an error
 *     naming its verification) ends failed, released, uncharged;
 *   - a cancel answered 200 ended cancelled with the hold voided and nothing charged; a cancel
 *     answered 409 invalid_state showing a finished state ended in that state;
 *   - an SMS answer showing "received" means the verification ended received; an SMS sent after
 *     the deadline is never charged, nor is test_late (its SMS comes after the deadline);
 *   - a received verification was charged exactly its price, once; any other was charged nothing;
 *   - nothing is left pending or waiting once the engines have drained;
 *   - every customer's wallet ends at what the soak credited minus the prices of their received
 *     verifications, with nothing held;
 *   - no request was answered 500.
 */
export interface FinalVerification {
  id: string;
  userId: string;
  key: string;
  service: string;
  state: string;
  priceMinor: number;
  expiresAt: number;
  /** How the hold ended: posted, voided, expired; null while unresolved. */
  outcome: string | null;
  /** Sum and number of charge transfers of its hold. */
  chargedMinor: number;
  charges: number;
}

export interface FinalWallet {
  userId: string;
  postedMinor: number;
  heldMinor: number;
}

export interface Violation {
  kind: string;
  subject: string;
  detail: string;
}

const finished = new Set(['received', 'cancelled', 'expired', 'failed']);

function describeAnswer(a: Answer): string {
  return `${a.kind} ${a.status}${a.code ? ` ${a.code}` : ''}${a.state ? ` (${a.state})` : ''}`;
}

export function judge(answers: Answer[], rows: FinalVerification[], wallets: FinalWallet[], funding: Map<string, number>): Violation[] {
  const violations: Violation[] = [];
  const flag = (kind: string, subject: string, detail: string) => violations.push({ kind, subject, detail });
  const byId = new Map(rows.map((r) => [r.id, r]));
  const byKey = new Map(rows.map((r) => [`${r.userId}|${r.key}`, r]));

  const purchases = answers.filter((a): a is PurchaseAnswer => a.kind === 'purchase');
  const keys = new Map<string, PurchaseAnswer[]>();
  for (const a of purchases) {
    const key = `${a.userId}|${a.key}`;
    keys.set(key, [...(keys.get(key) ?? []), a]);
  }

  for (const a of answers) {
    if (a.status === 500) flag('server_error_500', a.verificationId ?? a.userId, describeAnswer(a));
  }

  for (const [key, list] of keys) {
    const row = byKey.get(key);
    const same = list.filter((a) => a.variant !== 'mismatch');
    for (const a of list) {
      if (!a.verificationId) continue;
      const named = byId.get(a.verificationId);
      if (!named) flag('answer_names_missing_verification', a.verificationId, `${describeAnswer(a)} for key ${a.key}`);
      else if (named.userId !== a.userId || named.key !== a.key) {
        flag('answer_names_other_verification', a.verificationId, `${describeAnswer(a)} for key ${a.key}, row has key ${named.key}`);
      }
    }
    const served = same.filter((a) => a.verificationId !== undefined);
    const ids = new Set(served.map((a) => a.verificationId));
    if (ids.size > 1) flag('key_answered_with_two_verifications', key, [...ids].join(', '));
    const outcomes = new Set(served.map((a) => `${a.status} ${a.code ?? ''}`.trim()));
    if (outcomes.size > 1) flag('key_replayed_differently', key, [...outcomes].join(' / '));
    if (row && list.every(isRefusal)) flag('refused_purchase_left_row', row.id, list.map(describeAnswer).join(', '));
    if (!row && list.some((a) => a.code === 'idempotency_in_progress')) flag('in_progress_without_row', key, 'answered 409 idempotency_in_progress, yet no verification has the key');
    for (const a of list) {
      if (a.variant === 'mismatch' && (a.status === 201 || a.status === 202)) {
        flag('reused_key_served', a.verificationId ?? key, `a different body with the same key was answered ${a.status}`);
      }
    }
    if (!row) continue;
    if (same.some((a) => a.status === 201) && (row.state === 'pending' || row.state === 'failed')) {
      flag('answered_201_never_assigned', row.id, `answered 201, ended ${row.state}`);
    }
    const failedAnswer = same.find((a) => a.verificationId && typeof a.status === 'number' && a.status >= 400);
    if (failedAnswer && (row.state !== 'failed' || row.outcome !== 'voided' || row.chargedMinor !== 0)) {
      flag('failed_answer_not_released', row.id, `${describeAnswer(failedAnswer)}, ended ${row.state}/${row.outcome ?? 'unresolved'}, charged ${row.chargedMinor}`);
    }
  }

  for (const a of answers.filter((x): x is CancelAnswer => x.kind === 'cancel')) {
    const row = byId.get(a.verificationId);
    if (!row) continue;
    if (a.status === 200 && (row.state !== 'cancelled' || row.outcome !== 'voided' || row.chargedMinor !== 0)) {
      flag('cancel_200_not_refunded', row.id, `cancel answered 200, ended ${row.state}/${row.outcome ?? 'unresolved'}, charged ${row.chargedMinor}`);
    }
    if (a.status === 409 && a.code === 'invalid_state' && a.state && finished.has(a.state) && a.state !== row.state) {
      flag('cancel_409_state_changed', row.id, `cancel answered 409 showing ${a.state}, ended ${row.state}`);
    }
  }

  for (const a of answers.filter((x): x is SmsAnswer => x.kind === 'sms')) {
    const row = byId.get(a.verificationId);
    if (a.status === 200 && a.state === 'received' && row && row.state !== 'received') {
      flag('sms_answer_contradicts_row', a.verificationId, `SMS answer showed received, ended ${row.state}`);
    }
    if (a.sentAt > a.expiresAt && a.state === 'received') {
      flag('late_sms_charged', a.verificationId, `SMS sent ${((a.sentAt - a.expiresAt) / 1000).toFixed(1)} s after the deadline was captured`);
    }
  }

  const spent = new Map<string, number>();
  const held = new Map<string, number>();
  for (const row of rows) {
    if (row.state === 'received') {
      spent.set(row.userId, (spent.get(row.userId) ?? 0) + row.priceMinor);
      if (row.charges !== 1 || row.chargedMinor !== row.priceMinor) {
        flag('received_not_charged_its_price', row.id, `price ${row.priceMinor}, ${row.charges} charge(s) totalling ${row.chargedMinor}`);
      }
    } else if (row.chargedMinor !== 0) {
      flag('refunded_but_charged', row.id, `${row.state}, charged ${row.chargedMinor}`);
    }
    if (row.service === 'test_late' && row.state === 'received') flag('test_late_charged', row.id, 'test_late delivers after the deadline, yet it was captured');
    if (!finished.has(row.state)) {
      flag('still_active_after_drain', row.id, `${row.state}, deadline ${new Date(row.expiresAt).toISOString()}`);
      held.set(row.userId, (held.get(row.userId) ?? 0) + row.priceMinor);
    }
  }
  for (const wallet of wallets) {
    const funded = funding.get(wallet.userId);
    if (funded === undefined) continue;
    const expected = funded - (spent.get(wallet.userId) ?? 0);
    const expectedHeld = held.get(wallet.userId) ?? 0;
    if (wallet.postedMinor !== expected || wallet.heldMinor !== expectedHeld) {
      flag(
        'wallet_not_funding_minus_captured',
        wallet.userId,
        `posted ${wallet.postedMinor}, held ${wallet.heldMinor}; expected ${expected} (credited ${funded} − received ${spent.get(wallet.userId) ?? 0}), held ${expectedHeld}`,
      );
    }
  }
  return violations;
}
