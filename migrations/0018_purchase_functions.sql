-- The purchase's two writes, each one statement (docs/performance.md, "One round trip per phase").
-- The rules are the same as the transactions they replace: the customer's row is locked so one
-- customer's purchases queue; a replayed Idempotency-Key returns the stored verification; the
-- limits, the breaker and the price cap refuse before anything is written; the hold goes through
-- ledger_holds and its trigger (the balance checks stay in the ledger's constraints). Refusals are
-- raised as 'namaskah:<error code>' with the figures the answer needs in DETAIL, so the statement
-- writes nothing when it refuses.

-- The ledger's one way to place a hold: the wallet's hold row (its trigger moves held_minor and the
-- available-balance constraint refuses an overdraft). The wallet's live event is the caller's: a
-- NOTIFY here would put every purchase's commit behind PostgreSQL's one notification-queue lock.
CREATE FUNCTION ledger_place_hold(p_user uuid, p_amount bigint, p_verification uuid, p_expires_at timestamptz, p_actor text, p_now timestamptz)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
  v_hold uuid;
BEGIN
  INSERT INTO ledger_holds (account_id, amount_minor, verification_id, expires_at, actor, created_at)
  SELECT a.id, p_amount, p_verification, p_expires_at, p_actor, p_now FROM ledger_accounts a WHERE a.user_id = p_user
  RETURNING id INTO v_hold;
  IF v_hold IS NULL THEN
    RAISE EXCEPTION 'namaskah:unknown_account' USING DETAIL = p_user::text;
  END IF;
  RETURN v_hold;
END $$;

-- Phase 1 of a purchase: the stored verification for this Idempotency-Key (a replay), or a new
-- pending verification with its hold and its first audit event.
CREATE FUNCTION verification_reserve_purchase(
  p_id uuid, p_user uuid, p_key text, p_fingerprint text, p_provider text, p_service text, p_country text,
  p_max_price bigint, p_currency text, p_now timestamptz, p_expires_at timestamptz, p_purchase_until timestamptz,
  p_max_active integer, p_per_minute integer, p_breaker_open boolean,
  p_options jsonb, p_surcharge_cost bigint, p_voice boolean, p_price bigint)
RETURNS SETOF verifications LANGUAGE plpgsql AS $$
DECLARE
  v_row verifications;
  v_price bigint;
  v_cost bigint;
  v_voice boolean;
  v_surcharge bigint;
  v_active integer;
  v_recent integer;
  v_first timestamptz;
  v_since timestamptz := p_now - interval '60 seconds';
  v_hold uuid;
BEGIN
  -- NO KEY UPDATE, not UPDATE: captures and refunds of the same customer take KEY SHARE on this row
  -- (foreign keys of their notifications) while holding the wallet, which this needs next.
  PERFORM 1 FROM users WHERE id = p_user FOR NO KEY UPDATE;
  SELECT * INTO v_row FROM verifications WHERE user_id = p_user AND idempotency_key = p_key;
  IF FOUND THEN
    RETURN NEXT v_row;
    RETURN;
  END IF;

  -- The offer at the provider chosen (NULL: nobody sells it). Our price is the routed offer's when
  -- several providers stand behind it (p_price), else this provider's own, sold only at a margin.
  SELECT s.price_minor, s.cost_minor, s.voice INTO v_price, v_cost, v_voice
  FROM services s WHERE s.provider = p_provider AND s.service = p_service AND s.country = p_country AND s.enabled;
  IF NOT FOUND OR (p_price IS NULL AND v_price <= v_cost) THEN
    RAISE EXCEPTION 'namaskah:unknown_service';
  END IF;
  v_price := coalesce(p_price, v_price);
  IF p_voice AND NOT v_voice THEN
    RAISE EXCEPTION 'namaskah:voice_not_offered';
  END IF;
  -- The options' surcharge (number-options.ts optionSurcharge): the upstream's charge, sold with the
  -- offer's own margin, price ÷ cost, rounded up; an offer sold at cost passes it on at cost.
  IF p_surcharge_cost > 0 THEN
    v_surcharge := CASE WHEN v_cost > 0 AND v_price > v_cost
                        THEN (p_surcharge_cost * v_price + v_cost - 1) / v_cost
                        ELSE p_surcharge_cost END;
    v_price := v_price + v_surcharge;
    v_cost := v_cost + p_surcharge_cost;
  END IF;
  IF p_max_price IS NOT NULL AND v_price > p_max_price THEN
    RAISE EXCEPTION 'namaskah:price_exceeds_max' USING DETAIL = v_price::text;
  END IF;

  SELECT count(*) FILTER (WHERE state IN ('pending', 'waiting'))::int,
         count(*) FILTER (WHERE created_at >= v_since)::int,
         min(expires_at) FILTER (WHERE state IN ('pending', 'waiting'))
    INTO v_active, v_recent, v_first
  FROM verifications WHERE user_id = p_user AND (state IN ('pending', 'waiting') OR created_at >= v_since);
  IF v_active >= p_max_active THEN
    RAISE EXCEPTION 'namaskah:too_many_active' USING DETAIL = coalesce((extract(epoch FROM v_first) * 1000)::bigint::text, '');
  END IF;
  IF v_recent >= p_per_minute THEN
    RAISE EXCEPTION 'namaskah:rate_limited';
  END IF;
  IF p_breaker_open THEN
    RAISE EXCEPTION 'namaskah:provider_unavailable';
  END IF;

  -- Only to name the price in the answer: the ledger's constraint is what refuses an overdraft.
  IF EXISTS (SELECT 1 FROM ledger_accounts WHERE user_id = p_user AND posted_minor - held_minor < v_price) THEN
    RAISE EXCEPTION 'namaskah:insufficient_funds' USING DETAIL = v_price::text;
  END IF;
  v_hold := ledger_place_hold(p_user, v_price, p_id, p_expires_at, 'customer', p_now);
  INSERT INTO verifications (id, user_id, provider, service, country, state, price_minor, max_cost_minor, currency,
                             idempotency_key, request_fingerprint, hold_id, created_at, updated_at, expires_at,
                             purchase_until, next_check_at, number_options)
  VALUES (p_id, p_user, p_provider, p_service, p_country, 'pending', v_price, v_cost, p_currency,
          p_key, p_fingerprint, v_hold, p_now, p_now, p_expires_at, p_purchase_until, p_purchase_until, p_options)
  RETURNING * INTO v_row;
  INSERT INTO verification_events (verification_id, from_state, to_state, actor, reason, created_at)
  VALUES (p_id, NULL, 'pending', 'customer', 'purchase requested', p_now);
  RETURN NEXT v_row;
END $$;

-- Phase 3 of a purchase, the common case: pending → waiting with the upstream's order, its audit
-- event (the live event is published by the caller after the commit). Returns no row, and writes nothing, whenever the general path must
-- decide (the row is no longer pending, the order id is held by another verification, the customer
-- has a webhook endpoint for verification.waiting, the audit trail is not the purchase's alone, or
-- the customer reported this number for this service).
CREATE FUNCTION verification_assign_number(
  p_id uuid, p_order_id text, p_phone text, p_ends_at timestamptz, p_now timestamptz, p_ttl_seconds integer,
  p_poll_ms integer, p_response_status integer, p_actor text, p_reason text)
RETURNS SETOF verifications LANGUAGE plpgsql AS $$
DECLARE
  v_row verifications;
  v_deadline timestamptz;
BEGIN
  SELECT * INTO v_row FROM verifications WHERE id = p_id FOR UPDATE;
  IF NOT FOUND OR v_row.state <> 'pending' THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM verifications WHERE provider = v_row.provider AND provider_order_id = p_order_id AND id <> p_id)
     OR EXISTS (SELECT 1 FROM webhook_endpoints WHERE user_id = v_row.user_id AND enabled AND 'verification.waiting' = ANY (events))
     OR (SELECT count(*) FROM verification_events WHERE verification_id = p_id) <> 1
     -- A number this customer reported for this service is refused by the general path.
     OR EXISTS (SELECT 1 FROM number_reports WHERE user_id = v_row.user_id AND service = v_row.service AND phone_number = p_phone) THEN
    RETURN;
  END IF;
  v_deadline := v_row.created_at + make_interval(secs => p_ttl_seconds);
  IF p_ends_at IS NOT NULL AND p_ends_at < v_deadline THEN
    v_deadline := p_ends_at;
  END IF;
  UPDATE verifications
     SET state = 'waiting', phone_number = p_phone, provider_order_id = p_order_id,
         expires_at = least(v_deadline, v_row.expires_at), purchase_until = NULL,
         next_check_at = least(p_now + make_interval(secs => p_poll_ms / 1000.0), v_deadline),
         upstream_status = 'open', response_status = coalesce(v_row.response_status, p_response_status),
         updated_at = p_now, resolved_at = NULL
   WHERE id = p_id AND state = 'pending'
  RETURNING * INTO v_row;
  INSERT INTO verification_events (verification_id, from_state, to_state, actor, reason, created_at)
  VALUES (p_id, 'pending', 'waiting', p_actor, p_reason, p_now);
  RETURN NEXT v_row;
END $$;

-- Credentials cached in the API processes (src/accounts/credential-cache.ts): every change that can
-- end or alter what a session or API key grants signals namaskah_credentials when it commits, and
-- every process empties its cache. Touches (last_used_at, last_seen_at) do not signal.
CREATE FUNCTION credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('namaskah_credentials', TG_TABLE_NAME);
  RETURN NULL;
END $$;
CREATE TRIGGER api_keys_credentials_changed AFTER UPDATE ON api_keys FOR EACH ROW
  WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.key_hash IS DISTINCT FROM NEW.key_hash OR OLD.user_id IS DISTINCT FROM NEW.user_id)
  EXECUTE FUNCTION credentials_changed();
CREATE TRIGGER api_keys_credentials_removed AFTER DELETE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION credentials_changed();
CREATE TRIGGER sessions_credentials_changed AFTER UPDATE ON sessions FOR EACH ROW
  WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
        OR OLD.token_hash IS DISTINCT FROM NEW.token_hash OR OLD.user_id IS DISTINCT FROM NEW.user_id
        OR OLD.csrf_token IS DISTINCT FROM NEW.csrf_token OR OLD.authenticated_at IS DISTINCT FROM NEW.authenticated_at)
  EXECUTE FUNCTION credentials_changed();
CREATE TRIGGER sessions_credentials_removed AFTER DELETE ON sessions FOR EACH STATEMENT EXECUTE FUNCTION credentials_changed();
CREATE TRIGGER users_credentials_changed AFTER UPDATE ON users FOR EACH ROW
  WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.totp_enabled_at IS DISTINCT FROM NEW.totp_enabled_at
        OR OLD.password_hash IS DISTINCT FROM NEW.password_hash OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
  EXECUTE FUNCTION credentials_changed();
CREATE TRIGGER users_credentials_removed AFTER DELETE ON users FOR EACH STATEMENT EXECUTE FUNCTION credentials_changed();
