-- Wallet top-ups through payment processors (src/payments; docs/payments.md). Money still moves only
-- through the ledger: a top-up's credit is the ledger transfer keyed `top-up:<top_up id>`, so the
-- database allows one credit per top-up whatever the processor sends and however often.

CREATE TABLE top_ups (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id              uuid NOT NULL REFERENCES users(id),
  processor            text NOT NULL CHECK (processor IN ('sandbox', 'stripe', 'paystack')),
  amount_minor         bigint NOT NULL CHECK (amount_minor > 0),
  currency             text NOT NULL,
  status               text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'credited', 'failed', 'expired', 'review')),
  idempotency_key      text NOT NULL,
  fingerprint          text NOT NULL,
  -- The processor's checkout (Stripe Checkout Session id, Paystack reference, sandbox checkout id).
  processor_reference  text,
  -- The processor's payment once it confirmed one (Stripe PaymentIntent, Paystack transaction id).
  processor_payment_id text,
  checkout_url         text,
  credited_minor       bigint CHECK (credited_minor > 0),
  credit_transfer_id   uuid UNIQUE REFERENCES ledger_transfers(id),
  status_reason        text,
  created_at           timestamptz NOT NULL,
  updated_at           timestamptz NOT NULL,
  credited_at          timestamptz,
  UNIQUE (user_id, idempotency_key),
  UNIQUE (processor, processor_reference),
  UNIQUE (processor, processor_payment_id),
  CONSTRAINT top_ups_credit_recorded CHECK ((status = 'credited') = (credit_transfer_id IS NOT NULL AND credited_minor IS NOT NULL))
);
CREATE INDEX top_ups_user_idx ON top_ups (user_id, created_at DESC, id DESC);
CREATE INDEX top_ups_pending_idx ON top_ups (created_at) WHERE status = 'pending';

-- Every verified processor event, acted on at most once: the primary key is the processor's event
-- id, inserted in the same transaction as the event's effect. Events that match no top-up, or whose
-- amount or currency differ from the top-up's, are kept here for review, never lost.
CREATE TABLE payment_events (
  processor     text NOT NULL,
  event_id      text NOT NULL,
  type          text NOT NULL,
  top_up_id     uuid REFERENCES top_ups(id),
  payment_id    text,
  amount_minor  bigint,
  currency      text,
  outcome       text NOT NULL CHECK (outcome IN ('credited', 'already_credited', 'failed', 'expired', 'reversed',
                                                  'mismatch', 'unknown_top_up', 'ignored')),
  detail        text,
  received_at   timestamptz NOT NULL,
  PRIMARY KEY (processor, event_id)
);
CREATE INDEX payment_events_review_idx ON payment_events (received_at) WHERE outcome IN ('mismatch', 'unknown_top_up');

-- Money a processor took back after a top-up (a refund, a lost dispute), one row per processor
-- refund or dispute. `collected_minor` is what the ledger has taken back from the wallet so far, by
-- transfers keyed `top-up-reversal:<id>:…`; the rest is a receivable that the customer's next
-- credited top-up settles first. A wallet is never pushed below zero to collect it.
CREATE TABLE top_up_reversals (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  top_up_id        uuid NOT NULL REFERENCES top_ups(id),
  user_id          uuid NOT NULL REFERENCES users(id),
  processor        text NOT NULL,
  reference        text NOT NULL,
  kind             text NOT NULL CHECK (kind IN ('refund', 'dispute')),
  amount_minor     bigint NOT NULL CHECK (amount_minor > 0),
  collected_minor  bigint NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  UNIQUE (processor, reference),
  CONSTRAINT top_up_reversals_collected_within CHECK (collected_minor BETWEEN 0 AND amount_minor)
);
CREATE INDEX top_up_reversals_outstanding_idx ON top_up_reversals (user_id) WHERE collected_minor < amount_minor;
