import type { HoldOutcome } from '../ledger/ledger.ts';
import type { VerificationState } from './schema.ts';

/**
 * The verification state machine (docs/architecture.md, "The state machine") as plain data. Every transition moves the hold in a
 * fixed way, so the money outcome follows from the state and nothing else:
 *
 *   pending → waiting     number assigned, hold stays
 *   pending → failed      definite failure / recovery gave up, hold voided
 *   waiting → received    SMS arrived, hold posted (captured)
 *   waiting → cancelled   customer cancel, hold voided
 *   waiting → expired     deadline passed, hold expired
 */
export type HoldMove = 'keep' | 'post' | 'void' | 'expire';

const moves: Record<VerificationState, Partial<Record<VerificationState, HoldMove>>> = {
  pending: { waiting: 'keep', failed: 'void' },
  waiting: { received: 'post', cancelled: 'void', expired: 'expire' },
  received: {},
  cancelled: {},
  expired: {},
  failed: {},
};

export function holdMoveFor(from: VerificationState, to: VerificationState): HoldMove | undefined {
  return moves[from][to];
}

export function isTerminal(state: VerificationState): boolean {
  return Object.keys(moves[state]).length === 0;
}

/** Whether a customer may cancel now: only a live number with no code yet. */
export function canCancel(state: VerificationState): boolean {
  return state === 'waiting';
}

/** The verification's deadline: the earlier of the upstream's own end and our TTL. */
export function deadlineFor(createdAt: Date, ttlSeconds: number, upstreamEndsAt: Date | null): Date {
  const ours = createdAt.getTime() + ttlSeconds * 1000;
  return new Date(upstreamEndsAt ? Math.min(ours, upstreamEndsAt.getTime()) : ours);
}

/** Whether the customer got their money back: the hold was released rather than captured. */
export function isRefunded(state: VerificationState): boolean {
  return state === 'cancelled' || state === 'expired' || state === 'failed';
}

/** How a terminal state resolves its hold: delivered → posted, deadline → expired, cancel/failure → voided. */
export function holdOutcomeFor(state: VerificationState): HoldOutcome | undefined {
  if (state === 'received') return 'posted';
  if (state === 'expired') return 'expired';
  if (state === 'cancelled' || state === 'failed') return 'voided';
  return undefined;
}

/** Backoff for repeated upstream trouble on one row: 2 s, 4 s, 8 s … capped at 5 minutes. */
export function backoffMs(failures: number): number {
  return Math.min(300_000, 1000 * 2 ** Math.max(1, Math.min(failures, 20)));
}
