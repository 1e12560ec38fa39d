-- The operator's controls per upstream (src/providers/controls.ts): whether it may sell (enabled),
-- is switched off at once (disabled: the kill switch) or is being wound down (draining). Orders it
-- already sold settle in every mode. A provider without a row is enabled.
CREATE TABLE provider_controls (
  provider            text PRIMARY KEY,
  mode                text NOT NULL DEFAULT 'enabled' CHECK (mode IN ('enabled', 'disabled', 'draining')),
  -- The operator's low-balance threshold for this upstream (NULL: UPSTREAM_BALANCE_LOW_MINOR).
  balance_low_minor   bigint CHECK (balance_low_minor IS NULL OR balance_low_minor >= 0),
  -- Set when the balance was last seen below the threshold (the alert is raised once per crossing),
  -- cleared when it is seen at or above it again.
  balance_low_since   timestamptz,
  -- The last balance read, for the operator's page (NULL: never read, or the upstream does not state it).
  balance_minor       bigint,
  balance_currency    text,
  balance_read_at     timestamptz,
  changed_by          uuid,
  -- Who last set the mode or threshold, and when (NULL: nobody yet; every change is in audit_log too).
  changed_at          timestamptz
);

-- Admins are told when an upstream's balance falls below its threshold (the list keeps 0011's and 0015's kinds).
-- rolling-upgrade: compatible: replaced at once by a wider CHECK (the previous release's kinds stay allowed)
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
  CHECK (kind IN ('code_received', 'refund_issued', 'account_security', 'webhook_endpoint_disabled', 'low_balance', 'upstream_balance_low'));

-- Success rate and time to code per service and country over the last day (src/catalogue/stats.ts):
-- a range of the finished rows, read from the index alone.
CREATE INDEX verifications_finished ON verifications (resolved_at) INCLUDE (provider, service, country, state, created_at)
  WHERE resolved_at IS NOT NULL;
