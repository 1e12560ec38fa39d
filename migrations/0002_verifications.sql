-- Namaskah schema, part 2: the catalogue, verifications and their lifecycle, notifications.

CREATE TABLE services (
  provider     text NOT NULL,
  service      text NOT NULL,
  country      text NOT NULL,
  name         text NOT NULL,
  price_minor  bigint NOT NULL CHECK (price_minor > 0),
  -- The most we agree to pay upstream for one number (sent as the upstream's price cap).
  cost_minor   bigint NOT NULL CHECK (cost_minor > 0),
  enabled      boolean NOT NULL DEFAULT true,
  PRIMARY KEY (provider, service, country)
);

CREATE TABLE verifications (
  id                   uuid PRIMARY KEY,
  user_id              uuid NOT NULL REFERENCES users(id),
  provider             text NOT NULL,
  service              text NOT NULL,
  country              text NOT NULL,
  state                text NOT NULL CHECK (state IN ('pending', 'waiting', 'received', 'cancelled', 'expired', 'failed')),
  price_minor          bigint NOT NULL CHECK (price_minor > 0),
  max_cost_minor       bigint NOT NULL CHECK (max_cost_minor > 0),
  currency             text NOT NULL,
  idempotency_key      text NOT NULL,
  request_fingerprint  text NOT NULL,
  hold_id              uuid NOT NULL UNIQUE REFERENCES ledger_holds(id),
  phone_number         text,
  provider_order_id    text,
  code                 text,
  created_at           timestamptz NOT NULL,
  updated_at           timestamptz NOT NULL,
  expires_at           timestamptz NOT NULL,
  resolved_at          timestamptz,
  -- The purchase call is in flight until this instant; after it, recovery may take over.
  purchase_until       timestamptz,
  -- The first answer given to the customer, replayed for the same Idempotency-Key.
  response_status      integer,
  response_code        text,
  failure_reason       text,
  -- Background engine: when the row is next due, and who holds it.
  next_check_at        timestamptz,
  lease_owner          text,
  lease_until          timestamptz,
  check_failures       integer NOT NULL DEFAULT 0,
  -- What we still owe the upstream (or it owes us): see docs/architecture.md, "The flows" (upstream settlement).
  upstream_status      text NOT NULL DEFAULT 'none'
                       CHECK (upstream_status IN ('none', 'open', 'completed', 'cancelled', 'cancel_owed', 'reported', 'absent', 'orphan_suspected')),
  upstream_next_at     timestamptz,
  upstream_attempts    integer NOT NULL DEFAULT 0,
  CONSTRAINT verifications_idempotency UNIQUE (user_id, idempotency_key),
  CONSTRAINT verifications_resolved CHECK ((state IN ('pending', 'waiting')) = (resolved_at IS NULL)),
  CONSTRAINT verifications_number_when_assigned CHECK (state IN ('pending', 'failed') OR phone_number IS NOT NULL)
);
CREATE UNIQUE INDEX verifications_provider_order ON verifications (provider, provider_order_id) WHERE provider_order_id IS NOT NULL;
CREATE INDEX verifications_user_created ON verifications (user_id, created_at DESC, id DESC);
CREATE INDEX verifications_due ON verifications (next_check_at) WHERE state IN ('pending', 'waiting', 'expired');
CREATE INDEX verifications_upstream_due ON verifications (upstream_next_at) WHERE upstream_status = 'cancel_owed';
CREATE INDEX verifications_created ON verifications (created_at);

CREATE TABLE verification_events (
  id               bigserial PRIMARY KEY,
  verification_id  uuid NOT NULL REFERENCES verifications(id),
  from_state       text,
  to_state         text NOT NULL,
  actor            text NOT NULL CHECK (actor IN ('customer', 'poller', 'sweeper', 'webhook', 'admin', 'reconciler', 'recovery')),
  reason           text,
  created_at       timestamptz NOT NULL
);
CREATE INDEX verification_events_verification ON verification_events (verification_id, id);

CREATE TABLE verification_messages (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  verification_id      uuid NOT NULL REFERENCES verifications(id),
  provider_message_id  text NOT NULL,
  text                 text NOT NULL,
  code                 text,
  received_at          timestamptz NOT NULL,
  -- Arrived after the verification was cancelled or expired: shown, never charged.
  late                 boolean NOT NULL DEFAULT false,
  created_at           timestamptz NOT NULL,
  CONSTRAINT verification_messages_once UNIQUE (verification_id, provider_message_id)
);

CREATE TABLE notifications (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id          uuid NOT NULL REFERENCES users(id),
  verification_id  uuid REFERENCES verifications(id),
  kind             text NOT NULL CHECK (kind IN ('code_received', 'refund_issued')),
  title            text NOT NULL,
  body             text NOT NULL,
  created_at       timestamptz NOT NULL,
  read_at          timestamptz,
  CONSTRAINT notifications_once UNIQUE (verification_id, kind)
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC);

-- Signed upstream webhooks seen, for replay protection.
CREATE TABLE webhook_deliveries (
  provider     text NOT NULL,
  event_id     text NOT NULL,
  received_at  timestamptz NOT NULL,
  PRIMARY KEY (provider, event_id)
);

-- Workers say they are alive; engine lag and dead workers are read from here.
CREATE TABLE engine_workers (
  id            text PRIMARY KEY,
  started_at    timestamptz NOT NULL,
  last_tick_at  timestamptz NOT NULL
);
