-- Lifecycle hardening (docs/architecture.md): upstream alarms kept on the verification they concern,
-- and the finish owed to an upstream once its code was delivered.

-- An upstream answer that needs an operator's eyes (diagnose, metrics): the seller gave a purchase an
-- order id it had already given another one, or said an order was completed while we saw no SMS.
ALTER TABLE verifications
  ADD COLUMN upstream_alarm text CHECK (upstream_alarm IN ('order_id_reused', 'completed_without_sms')),
  ADD COLUMN upstream_alarm_at timestamptz,
  ADD CONSTRAINT verifications_upstream_alarm_dated CHECK ((upstream_alarm IS NULL) = (upstream_alarm_at IS NULL));
CREATE INDEX verifications_upstream_alarm ON verifications (upstream_alarm_at) WHERE upstream_alarm IS NOT NULL;

-- finish_owed: a delivered order still to be marked finished upstream (SMS-Activate setStatus 6),
-- retried by the engine like an owed cancel.
-- rolling-upgrade: compatible: replaced at once by a wider CHECK (the previous release's statuses stay allowed)
ALTER TABLE verifications DROP CONSTRAINT verifications_upstream_status_check;
ALTER TABLE verifications ADD CONSTRAINT verifications_upstream_status_check
  CHECK (upstream_status IN ('none', 'open', 'completed', 'cancelled', 'cancel_owed', 'finish_owed', 'reported', 'absent', 'orphan_suspected'));
-- rolling-upgrade: compatible: an index rebuilt with a wider predicate; no query depends on it existing
DROP INDEX verifications_upstream_due;
CREATE INDEX verifications_upstream_due ON verifications (upstream_next_at) WHERE upstream_status IN ('cancel_owed', 'finish_owed');
