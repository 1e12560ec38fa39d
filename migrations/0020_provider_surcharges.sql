-- Surcharges per provider (docs/number-options.md, "Price"): when several providers stand behind an
-- offer, the customer's price for the options is decided over all of them in the app (the highest
-- of each provider's surcharge sold with the offer's margin at that provider), while the price cap
-- stored and sent to the provider tried first stays that provider's own cost with its own
-- surcharge. The reservation takes that price as one more argument. A new overload: the previous
-- release keeps calling the 19-argument function, which a later release drops. It plans with
-- sequential scans off, and counts the customer's limits on two indexes (both: migration 0022).

CREATE FUNCTION verification_reserve_purchase(
  p_id uuid, p_user uuid, p_key text, p_fingerprint text, p_provider text, p_service text, p_country text,
  p_max_price bigint, p_currency text, p_now timestamptz, p_expires_at timestamptz, p_purchase_until timestamptz,
  p_max_active integer, p_per_minute integer, p_breaker_open boolean,
  p_options jsonb, p_surcharge_cost bigint, p_voice boolean, p_price bigint, p_surcharge_price bigint)
RETURNS SETOF verifications LANGUAGE plpgsql SET enable_seqscan = off AS $$
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
  -- The options' surcharge: this provider's upstream charge (p_surcharge_cost, part of its price
  -- cap) and the customer's price for it. Several providers behind the offer: the price the app
  -- decided over all of them (p_surcharge_price, number-options.ts routedOptionSurcharge: the
  -- highest, so the hold covers whichever failover picks). One provider: its own charge sold with
  -- the offer's margin, price ÷ cost, rounded up; an offer sold at cost passes it on at cost.
  IF p_surcharge_cost > 0 OR coalesce(p_surcharge_price, 0) > 0 THEN
    v_surcharge := CASE WHEN p_surcharge_price IS NOT NULL THEN p_surcharge_price
                        WHEN v_cost > 0 AND v_price > v_cost
                        THEN (p_surcharge_cost * v_price + v_cost - 1) / v_cost
                        ELSE p_surcharge_cost END;
    v_price := v_price + v_surcharge;
    v_cost := v_cost + p_surcharge_cost;
  END IF;
  IF p_max_price IS NOT NULL AND v_price > p_max_price THEN
    RAISE EXCEPTION 'namaskah:price_exceeds_max' USING DETAIL = v_price::text;
  END IF;

  -- Two counts, each on its own index (migration 0022): the customer's open verifications (at most
  -- MAX_ACTIVE_VERIFICATIONS of them) and those of the last minute, never the customer's history.
  SELECT count(*)::int, min(expires_at) INTO v_active, v_first
  FROM verifications WHERE user_id = p_user AND state IN ('pending', 'waiting');
  SELECT count(*)::int INTO v_recent FROM verifications WHERE user_id = p_user AND created_at >= v_since;
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
