-- Number care (docs/number-care.md): another code on the same number, reports of bad numbers,
-- customers' presets, and the low-balance notice.
--
-- rolling-upgrade: breaks-previous-release
-- An additional code the upstream gives for free is a verification without a hold (price 0). The
-- previous release would try to move a hold that does not exist when such a row reaches its end, so
-- it must not run against this schema.

-- Another code on the same number: a child verification linked to the verification that bought the
-- number. A child of an upstream that keeps the same order id (SMS-Activate setStatus 3) carries its
-- parent's order id, so the one-order-one-verification rule below applies to parents only; a seller
-- reusing an id for a new purchase is still caught (the purchase looks for any holder of the id).
ALTER TABLE verifications ADD COLUMN parent_id uuid REFERENCES verifications(id);
ALTER TABLE verifications ALTER COLUMN hold_id DROP NOT NULL;
-- rolling-upgrade: compatible: replaced at once by a wider CHECK (every price the previous release wrote stays allowed)
ALTER TABLE verifications DROP CONSTRAINT verifications_price_minor_check;
ALTER TABLE verifications ADD CONSTRAINT verifications_price_minor_check
  CHECK (price_minor > 0 OR (price_minor = 0 AND parent_id IS NOT NULL));
-- A free additional code holds nothing; everything else holds its price.
ALTER TABLE verifications ADD CONSTRAINT verifications_hold_unless_free
  CHECK ((hold_id IS NULL) = (price_minor = 0));
-- rolling-upgrade: compatible: the same unique index, children excluded (they share their parent's order)
DROP INDEX verifications_provider_order;
CREATE UNIQUE INDEX verifications_provider_order ON verifications (provider, provider_order_id)
  WHERE provider_order_id IS NOT NULL AND parent_id IS NULL;
-- At most one additional code in progress per number.
CREATE UNIQUE INDEX verifications_one_open_child ON verifications (parent_id)
  WHERE parent_id IS NOT NULL AND state IN ('pending', 'waiting');
CREATE INDEX verifications_children ON verifications (parent_id) WHERE parent_id IS NOT NULL;

-- Reports of bad numbers: one per verification. `upstream` says what the upstream was told:
-- 'reported' (its report call answered), 'report_owed' (not yet: settlement retries it), 'cancelled'
-- (a verification still waiting was cancelled instead, as any cancel), 'not_reportable' (the upstream
-- has no report, or refused it). `refund` says whether money is still to come back:
-- 'none' (nothing was captured: a waiting verification is cancelled and released instead),
-- 'awaiting_upstream' (captured; refunded when the upstream confirms it refunded us), 'refunded'
-- (the correction transfer was made), 'declined' (the upstream did not refund; the charge stands).
CREATE TABLE number_reports (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id          uuid NOT NULL REFERENCES users(id),
  verification_id  uuid NOT NULL UNIQUE REFERENCES verifications(id),
  provider         text NOT NULL,
  service          text NOT NULL,
  phone_number     text NOT NULL,
  reason           text NOT NULL CHECK (reason IN ('number_rejected', 'code_not_received')),
  upstream         text NOT NULL CHECK (upstream IN ('reported', 'report_owed', 'cancelled', 'not_reportable')),
  refund           text NOT NULL CHECK (refund IN ('none', 'awaiting_upstream', 'refunded', 'declined')),
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL
);
-- The next purchase avoids numbers the customer reported for that service; the daily limit counts.
CREATE INDEX number_reports_avoid ON number_reports (user_id, service, phone_number);
CREATE INDEX number_reports_user_created ON number_reports (user_id, created_at);
-- A captured verification whose report awaits the upstream's decision is upstream_status 'reported'
-- with upstream_next_at set: the engine's settlement asks again (and refunds on the upstream's refund).
-- rolling-upgrade: compatible: an index rebuilt with a wider predicate; no query depends on it existing
DROP INDEX verifications_upstream_due;
CREATE INDEX verifications_upstream_due ON verifications (upstream_next_at) WHERE upstream_status IN ('cancel_owed', 'finish_owed', 'reported');

-- Presets and favourites: what a customer buys often, kept per customer (area code and carrier are
-- opaque optional strings, passed to the purchase as they are).
CREATE TABLE purchase_presets (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     uuid NOT NULL REFERENCES users(id),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
  service     text NOT NULL,
  country     text NOT NULL,
  area_code   text,
  carrier     text,
  favourite   boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL,
  CONSTRAINT purchase_presets_name UNIQUE (user_id, name)
);

-- The low-balance notice: the threshold a customer set, and whether the balance is below it now
-- (a notice is raised when it goes below, once, and re-armed when it comes back up).
CREATE TABLE low_balance_alerts (
  user_id          uuid PRIMARY KEY REFERENCES users(id),
  threshold_minor  bigint NOT NULL CHECK (threshold_minor > 0),
  below            boolean NOT NULL DEFAULT false,
  updated_at       timestamptz NOT NULL
);

-- rolling-upgrade: compatible: replaced at once by a wider CHECK (the previous release's kinds stay allowed)
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
  CHECK (kind IN ('code_received', 'refund_issued', 'account_security', 'webhook_endpoint_disabled', 'low_balance'));
