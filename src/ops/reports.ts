import { z } from 'zod';
import { Timestamp } from '../clock.ts';
import { verificationStates } from '../verifications/schema.ts';

/**
 * The ops reports (`diagnose`, `reconcile`) as one schema each: what the HTTP routes validate and
 * document, what the CLI prints as JSON, and — through z.output — the types the reports are built as.
 */

/** What reconcile finds (src/ops/reconcile.ts says what each is and how it is repaired). */
const problemKinds = [
  'hold_past_deadline',
  'pending_stuck',
  'terminal_hold_unresolved',
  'wrongly_captured',
  'captured_after_deadline',
  'orphan_hold',
  'orphan_suspected',
  'upstream_cancel_owed',
  'upstream_orphan',
  'received_refunded',
  'active_hold_resolved',
  'top_up_overdue',
  'top_up_credit_unrecorded',
  'top_up_credit_mismatch',
] as const;
export type ProblemKind = (typeof problemKinds)[number];

/** One invariant check: `count` things violate it (0 when ok); `detail` names a few of them by id. */
const CheckSchema = z.object({ name: z.string(), ok: z.boolean(), count: z.number().int(), detail: z.string() }).meta({ id: 'DiagnoseCheck' });
export type Check = z.output<typeof CheckSchema>;

const WorkerSchema = z.object({
  id: z.string(),
  started_at: Timestamp,
  last_tick_at: Timestamp,
  alive: z.boolean().describe('its heartbeat is younger than ENGINE_DEAD_AFTER_SECONDS; the rows of a worker that is not alive are taken over by the others'),
});
export type WorkerReport = z.output<typeof WorkerSchema>;

const rate = z.number().nullable();

export const DiagnoseSchema = z
  .object({
    ok: z.boolean().describe('false when any invariant check fails'),
    generated_at: Timestamp,
    checks: z.array(CheckSchema),
    states: z.object(Object.fromEntries(verificationStates.map((s) => [s, z.number().int()])) as Record<(typeof verificationStates)[number], z.ZodNumber>),
    last_24h: z.object({
      purchases: z.number().int(),
      received: z.number().int(),
      expired: z.number().int(),
      cancelled: z.number().int(),
      failed: z.number().int(),
      success_rate: rate,
      timeout_rate: rate,
      refund_rate: rate,
    }),
    top_failing_services: z.array(
      z.object({ provider: z.string(), service: z.string(), purchases: z.number().int(), failures: z.number().int(), failure_rate: z.number() }),
    ),
    breakers: z.record(z.string(), z.string()),
    providers: z
      .array(
        z.object({
          name: z.string(),
          mode: z
            .enum(['active', 'drain', 'unconfigured'])
            .describe('active: in PROVIDERS; drain: removed from PROVIDERS, still reachable with its credentials, takes no new purchase; unconfigured: its orders cannot reach it'),
          breaker: z.string().describe('closed, open, half_open, or unknown (a command-line run has no breakers)'),
          open_orders: z.number().int().describe('pending or waiting verifications'),
          owed: z.number().int().describe('verifications whose upstream cancel or finish is still owed, or a suspected orphan'),
        }),
      )
      .describe('every configured provider, and every provider that still has open or owed orders'),
    engine: z.object({
      lag_seconds: z.number(),
      workers: z.array(WorkerSchema),
    }),
    late_sms: z.number().int().describe('messages that arrived after their verification was cancelled or expired: shown, never charged'),
    upstream_settlement_owed: z
      .object({ count: z.number().int(), amount_minor: z.number().int(), orphans_suspected: z.number().int() })
      .describe('upstream orders released for the customer and not yet cancelled upstream (amount: their cost caps)'),
    top_ups: z
      .object({
        pending: z.number().int(),
        overdue: z.number().int().describe('pending past TOP_UP_CHECKOUT_TTL_MINUTES: reconcile asks their processor'),
        in_review: z.number().int().describe('paid with another amount or currency than asked: an admin decides'),
        unknown_payments: z.number().int().describe('confirmed payments that matched no top-up, recorded for review'),
        receivables: z
          .object({ customers: z.number().int(), amount_minor: z.number().int() })
          .describe('owed for refunded or lost-dispute top-ups already spent; settled first by the next top-up'),
      })
      .describe('wallet top-ups (docs/payments.md)'),
    warnings: z.array(z.string()).describe('things an operator should look at; they never fail the report'),
  })
  .meta({ id: 'DiagnoseReport' });
export type DiagnoseReport = z.output<typeof DiagnoseSchema>;


const FindingSchema = z.object({
  kind: z.enum(problemKinds),
  verification_id: z.uuid().nullable(),
  user_email: z.string().nullable(),
  amount_minor: z
    .number()
    .int()
    .nullable()
    .describe('the money at stake: the hold (or the wrongly captured charge), or for upstream kinds the order’s cost cap'),
  detail: z.string(),
  repaired: z.boolean(),
});
export type Finding = z.output<typeof FindingSchema>;

export const ReconcileSchema = z
  .object({
    window_days: z.number().int(),
    execute: z.boolean(),
    user_email: z.string().nullable(),
    generated_at: Timestamp,
    found: z.array(FindingSchema),
    summary: z.partialRecord(z.enum(problemKinds), z.number().int()),
    remaining: z.number().int().describe('problems still present when the run ended'),
    repaired: z.number().int(),
    warnings: z.array(z.string()).describe('what reconcile could not look at (e.g. the provider’s order list was unavailable)'),
  })
  .meta({ id: 'ReconcileReport' });
export type ReconcileReport = z.output<typeof ReconcileSchema>;
