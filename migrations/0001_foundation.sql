-- Namaskah schema, part 1: accounts and the ledger.
-- The ledger's rules live here, not in application code: a bug in TypeScript must hit a constraint.

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
  password_hash text NOT NULL,
  role          text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
  created_at    timestamptz NOT NULL
);

CREATE TABLE sessions (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     uuid NOT NULL REFERENCES users(id),
  token_hash  text NOT NULL UNIQUE,
  csrf_token  text NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE api_keys (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL REFERENCES users(id),
  name         text NOT NULL,
  prefix       text NOT NULL,
  key_hash     text NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL,
  last_used_at timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- Admin actions, written in the same transaction as the change they record.
CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  actor_id    uuid REFERENCES users(id),
  actor       text NOT NULL,
  action      text NOT NULL,
  subject_id  uuid,
  detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at  timestamptz NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- Ledger. Vocabulary: account, transfer, hold (a pending transfer), post, void, expire.
-- Invariants:
--   * every transfer moves a positive amount from one account to another and is never changed;
--   * an account's posted_minor equals its credits minus its debits in the journal;
--   * an account's held_minor equals the sum of its unresolved holds;
--   * a wallet's available balance (posted - held) is never negative;
--   * a hold is resolved at most once: posted (with exactly one transfer of its amount), voided
--     or expired.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE ledger_accounts (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind          text NOT NULL CHECK (kind IN ('wallet', 'system')),
  code          text UNIQUE,
  user_id       uuid UNIQUE REFERENCES users(id),
  currency      text NOT NULL,
  may_overdraw  boolean NOT NULL DEFAULT false,
  posted_minor  bigint NOT NULL DEFAULT 0,
  held_minor    bigint NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL,
  CONSTRAINT ledger_accounts_held_nonnegative CHECK (held_minor >= 0),
  CONSTRAINT ledger_accounts_available_nonnegative CHECK (may_overdraw OR posted_minor - held_minor >= 0),
  CONSTRAINT ledger_accounts_owner CHECK ((kind = 'wallet') = (user_id IS NOT NULL)),
  CONSTRAINT ledger_accounts_system_code CHECK ((kind = 'system') = (code IS NOT NULL)),
  CONSTRAINT ledger_accounts_wallet_never_overdraws CHECK (kind = 'system' OR NOT may_overdraw)
);

CREATE TABLE ledger_holds (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id       uuid NOT NULL REFERENCES ledger_accounts(id),
  amount_minor     bigint NOT NULL CHECK (amount_minor > 0),
  verification_id  uuid UNIQUE,
  expires_at       timestamptz NOT NULL,
  actor            text NOT NULL,
  created_at       timestamptz NOT NULL
);
CREATE INDEX ledger_holds_account_idx ON ledger_holds (account_id, created_at);

CREATE TABLE ledger_transfers (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  debit_account_id   uuid NOT NULL REFERENCES ledger_accounts(id),
  credit_account_id  uuid NOT NULL REFERENCES ledger_accounts(id),
  amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
  kind               text NOT NULL CHECK (kind IN ('topup', 'adjustment', 'verification_charge')),
  idempotency_key    text UNIQUE,
  hold_id            uuid UNIQUE REFERENCES ledger_holds(id),
  verification_id    uuid,
  actor              text NOT NULL,
  actor_id           uuid,
  reason             text,
  created_at         timestamptz NOT NULL,
  CONSTRAINT ledger_transfers_two_accounts CHECK (debit_account_id <> credit_account_id),
  CONSTRAINT ledger_transfers_charge_has_hold CHECK ((kind = 'verification_charge') = (hold_id IS NOT NULL))
);
CREATE INDEX ledger_transfers_debit_idx ON ledger_transfers (debit_account_id, created_at);
CREATE INDEX ledger_transfers_credit_idx ON ledger_transfers (credit_account_id, created_at);

CREATE TABLE ledger_hold_resolutions (
  hold_id     uuid PRIMARY KEY REFERENCES ledger_holds(id),
  outcome     text NOT NULL CHECK (outcome IN ('posted', 'voided', 'expired')),
  actor       text NOT NULL,
  reason      text,
  created_at  timestamptz NOT NULL
);

-- The journal is append-only: corrections are new transfers, never edits.
CREATE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger rows are immutable: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'raise_exception', HINT = 'ledger_immutable';
END $$;

CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
  FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_holds_immutable BEFORE UPDATE OR DELETE ON ledger_holds
  FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_hold_resolutions_immutable BEFORE UPDATE OR DELETE ON ledger_hold_resolutions
  FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
-- TRUNCATE fires no row triggers, so it is refused separately.
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_holds_no_truncate BEFORE TRUNCATE ON ledger_holds
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_hold_resolutions_no_truncate BEFORE TRUNCATE ON ledger_hold_resolutions
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();

-- Cached balances are the journal's sums: they start at zero and only the ledger's own triggers
-- (below, nested one level deep) may change them. A direct UPDATE would mint or destroy money.
CREATE FUNCTION ledger_guard_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.posted_minor <> 0 OR NEW.held_minor <> 0 THEN
      RAISE EXCEPTION 'account balances change only through ledger transfers and holds: a new account starts at 0'
        USING ERRCODE = 'raise_exception', HINT = 'ledger_balances_guarded';
    END IF;
  ELSIF (NEW.posted_minor, NEW.held_minor) IS DISTINCT FROM (OLD.posted_minor, OLD.held_minor) AND pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'account balances change only through ledger transfers and holds: direct update of % refused', OLD.id
      USING ERRCODE = 'raise_exception', HINT = 'ledger_balances_guarded';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_accounts_guard_balances BEFORE INSERT OR UPDATE ON ledger_accounts
  FOR EACH ROW EXECUTE FUNCTION ledger_guard_balances();

-- A transfer moves posted balance. A charge (a transfer that posts a hold) also releases the hold in
-- the same row update, so the available balance never dips between the two halves.
CREATE FUNCTION ledger_apply_transfer() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  hold ledger_holds%ROWTYPE;
BEGIN
  -- Lock both accounts in a fixed order so concurrent transfers cannot deadlock. NO KEY UPDATE (the
  -- lock the balance UPDATEs below take anyway), not FOR UPDATE: the foreign-key checks on this row
  -- already hold KEY SHARE on both accounts, which FOR UPDATE would conflict with, deadlocking two
  -- transfers that share an account (e.g. two top-ups from funding).
  PERFORM 1 FROM ledger_accounts WHERE id IN (NEW.debit_account_id, NEW.credit_account_id)
    ORDER BY id FOR NO KEY UPDATE;
  IF NEW.hold_id IS NOT NULL THEN
    SELECT * INTO hold FROM ledger_holds WHERE id = NEW.hold_id;
    IF hold.amount_minor <> NEW.amount_minor OR hold.account_id <> NEW.debit_account_id THEN
      RAISE EXCEPTION 'a charge must post exactly its hold (hold %: % from %, transfer: % from %)',
        hold.id, hold.amount_minor, hold.account_id, NEW.amount_minor, NEW.debit_account_id
        USING ERRCODE = 'check_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ledger_hold_resolutions r WHERE r.hold_id = NEW.hold_id AND r.outcome = 'posted') THEN
      RAISE EXCEPTION 'hold % must be resolved as posted before its charge', NEW.hold_id
        USING ERRCODE = 'check_violation';
    END IF;
    UPDATE ledger_accounts SET posted_minor = posted_minor - NEW.amount_minor,
                               held_minor = held_minor - NEW.amount_minor
      WHERE id = NEW.debit_account_id;
  ELSE
    UPDATE ledger_accounts SET posted_minor = posted_minor - NEW.amount_minor WHERE id = NEW.debit_account_id;
  END IF;
  UPDATE ledger_accounts SET posted_minor = posted_minor + NEW.amount_minor WHERE id = NEW.credit_account_id;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_transfers_apply AFTER INSERT ON ledger_transfers
  FOR EACH ROW EXECUTE FUNCTION ledger_apply_transfer();

CREATE FUNCTION ledger_apply_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE ledger_accounts SET held_minor = held_minor + NEW.amount_minor WHERE id = NEW.account_id;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_holds_apply AFTER INSERT ON ledger_holds
  FOR EACH ROW EXECUTE FUNCTION ledger_apply_hold();

-- Voided and expired holds give the amount back to the available balance; a posted hold is
-- released by its charge transfer (above).
CREATE FUNCTION ledger_apply_resolution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.outcome IN ('voided', 'expired') THEN
    UPDATE ledger_accounts a SET held_minor = a.held_minor - h.amount_minor
      FROM ledger_holds h WHERE h.id = NEW.hold_id AND a.id = h.account_id;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_hold_resolutions_apply AFTER INSERT ON ledger_hold_resolutions
  FOR EACH ROW EXECUTE FUNCTION ledger_apply_resolution();

-- A hold resolved as posted must have its charge by the end of the transaction.
CREATE FUNCTION ledger_check_posted_has_charge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.outcome = 'posted' AND NOT EXISTS (SELECT 1 FROM ledger_transfers t WHERE t.hold_id = NEW.hold_id) THEN
    RAISE EXCEPTION 'hold % resolved as posted without a charge transfer', NEW.hold_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_posted_has_charge AFTER INSERT ON ledger_hold_resolutions
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_posted_has_charge();
