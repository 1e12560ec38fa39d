-- Customers' outbound webhooks (docs/webhooks.md), written only by src/outbound-webhooks: their
-- endpoints, the outbox of events (written in the transaction of the change each reports), one
-- delivery per event and endpoint, and every attempt. Not to be confused with webhook_deliveries,
-- the replay table of webhooks that upstream providers send us.

CREATE TABLE webhook_endpoints (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                uuid NOT NULL REFERENCES users(id),
  url                    text NOT NULL CHECK (length(url) <= 2048),
  description            text CHECK (length(description) <= 500),
  events                 text[] NOT NULL CHECK (cardinality(events) > 0),
  enabled                boolean NOT NULL DEFAULT true,
  -- Why the engine disabled it (null when the customer did, or it is enabled).
  disabled_reason        text,
  secret                 text NOT NULL CHECK (secret LIKE 'whsec\_%'),
  -- During a rotation's overlap window the previous secret signs too.
  previous_secret        text CHECK (previous_secret LIKE 'whsec\_%'),
  previous_secret_until  timestamptz,
  -- Since when every attempt has failed (null after a success): the endpoint is disabled when this is old enough.
  failing_since          timestamptz,
  created_at             timestamptz NOT NULL,
  updated_at             timestamptz NOT NULL,
  CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL))
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id);

CREATE TABLE outbound_webhook_events (
  id          text PRIMARY KEY,
  user_id     uuid NOT NULL REFERENCES users(id),
  type        text NOT NULL,
  -- What the event is about (a verification id, a transfer id): one event per state change, by constraint.
  subject_id  text NOT NULL,
  -- The exact body sent, {id, type, created_at, data}, fixed when the change committed.
  body        text NOT NULL,
  created_at  timestamptz NOT NULL,
  CONSTRAINT outbound_webhook_events_once UNIQUE (type, subject_id)
);
CREATE INDEX outbound_webhook_events_user ON outbound_webhook_events (user_id, created_at DESC);

CREATE TABLE outbound_webhook_deliveries (
  endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  event_id         text NOT NULL REFERENCES outbound_webhook_events(id),
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  -- Attempts made in the current schedule (a manual re-send starts a new one).
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at  timestamptz,
  lease_owner      text,
  lease_until      timestamptz,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  PRIMARY KEY (endpoint_id, event_id),
  CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX outbound_webhook_deliveries_due ON outbound_webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbound_webhook_deliveries_endpoint ON outbound_webhook_deliveries (endpoint_id, created_at DESC);

CREATE TABLE outbound_webhook_attempts (
  id                bigserial PRIMARY KEY,
  endpoint_id       uuid NOT NULL,
  event_id          text NOT NULL,
  worker            text NOT NULL,
  attempted_at      timestamptz NOT NULL,
  latency_ms        integer NOT NULL CHECK (latency_ms >= 0),
  succeeded         boolean NOT NULL,
  response_status   integer,
  -- The first bytes of the answer (capped), or why there was none (timeout, refused, address not allowed).
  response_excerpt  text,
  error             text,
  FOREIGN KEY (endpoint_id, event_id) REFERENCES outbound_webhook_deliveries (endpoint_id, event_id) ON DELETE CASCADE
);
CREATE INDEX outbound_webhook_attempts_delivery ON outbound_webhook_attempts (endpoint_id, event_id, id);

-- The owner of an endpoint the engine disabled is told so (the list keeps 0007's account notices).
-- rolling-upgrade: compatible: replaced at once by a wider CHECK (the previous release's kinds stay allowed)
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
  CHECK (kind IN ('code_received', 'refund_issued', 'account_security', 'webhook_endpoint_disabled'));
