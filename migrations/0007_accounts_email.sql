-- Accounts, part 3: email verification, password reset, two-factor sign-in, visible sessions,
-- deletion, and the local mail outbox.

ALTER TABLE users
  ADD COLUMN email_verified_at    timestamptz,
  -- TOTP: the secret awaiting its first code (enrolment), then the confirmed one.
  ADD COLUMN totp_pending_secret  text,
  ADD COLUMN totp_secret          text,
  ADD COLUMN totp_enabled_at      timestamptz,
  -- The last time step a code was accepted for: a code is never accepted twice.
  ADD COLUMN totp_last_step       bigint,
  ADD COLUMN password_changed_at  timestamptz,
  -- Deleted accounts are anonymised, never removed: the ledger keeps their transfers.
  ADD COLUMN deleted_at           timestamptz,
  ADD CONSTRAINT users_totp_enabled CHECK ((totp_secret IS NULL) = (totp_enabled_at IS NULL));

ALTER TABLE sessions
  ADD COLUMN user_agent        text,
  ADD COLUMN address           text,
  ADD COLUMN last_seen_at      timestamptz,
  -- When the password (and second factor) were last given in this session: "a recent sign-in".
  ADD COLUMN authenticated_at  timestamptz;
UPDATE sessions SET authenticated_at = created_at, last_seen_at = created_at;
-- The previous release inserts sessions without it during a rolling upgrade: the default fills it.
ALTER TABLE sessions ALTER COLUMN authenticated_at SET DEFAULT now();
-- rolling-upgrade: compatible: the column has a default, so the previous release's inserts still succeed
ALTER TABLE sessions ALTER COLUMN authenticated_at SET NOT NULL;
CREATE INDEX sessions_user_active_idx ON sessions (user_id, created_at DESC) WHERE revoked_at IS NULL;

-- Single-use links sent by email; only a SHA-256 of each token is stored.
CREATE TABLE account_tokens (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     uuid NOT NULL REFERENCES users(id),
  purpose     text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
  token_hash  text NOT NULL UNIQUE,
  -- The address the link was sent to: a verification proves that address, not a later one.
  email       text NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL CHECK (expires_at > created_at),
  used_at     timestamptz
);
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose) WHERE used_at IS NULL;

-- Two-factor recovery codes, shown once, stored as SHA-256; each works once.
CREATE TABLE recovery_codes (
  user_id     uuid NOT NULL REFERENCES users(id),
  code_hash   text NOT NULL,
  created_at  timestamptz NOT NULL,
  used_at     timestamptz,
  PRIMARY KEY (user_id, code_hash)
);

-- Mail written here instead of sent when no SMTP_URL is configured (the embedded default): the
-- admin reads it in the dashboard, the operator with `namaskah mail`.
CREATE TABLE mail_outbox (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  recipient   text NOT NULL,
  subject     text NOT NULL,
  body        text NOT NULL,
  created_at  timestamptz NOT NULL
);
CREATE INDEX mail_outbox_created_idx ON mail_outbox (created_at DESC, id DESC);

-- Account notices (new sign-in, new API key, password changed) have no verification.
-- rolling-upgrade: compatible: replaced at once by a wider CHECK (the previous release's kinds stay allowed)
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
  CHECK (kind IN ('code_received', 'refund_issued', 'account_security'));
