-- Finding a verification by its upstream order id (the purchase's guard against an order id given
-- twice, an incoming webhook's SMS): the unique index covers purchases and the additional codes
-- that own their order only, so a lookup that must see every additional code could not use it and
-- read the whole table, once per purchase (docs/performance.md, "Plans that stay fast"). This index
-- covers every row with an order id.
CREATE INDEX verifications_order_lookup ON verifications (provider, provider_order_id) WHERE provider_order_id IS NOT NULL;

-- The functions every purchase, capture and refund runs: each statement in them is a lookup by a key
-- that has an index. PostgreSQL plans a PL/pgSQL statement once per connection and keeps the plan;
-- one made while a table was small (a fresh install, a table analyzed while empty, an embedded
-- database before its first analyze) reads the whole table on every call for as long as the
-- connection lives. Measured: 7 full scans of verifications per purchase, 2.2 ms per purchase
-- instead of 1.1 ms at 3,000 rows (docs/performance.md). With sequential scans off inside them, the
-- plans use the indexes whatever the statistics said when they were made (the reservation of
-- migration 0020 is declared so).
ALTER FUNCTION verification_reserve_purchase(uuid, uuid, text, text, text, text, text, bigint, text, timestamptz, timestamptz, timestamptz,
  integer, integer, boolean, jsonb, bigint, boolean, bigint) SET enable_seqscan = off;
ALTER FUNCTION verification_assign_number(uuid, text, text, timestamptz, timestamptz, integer, integer, integer, text, text) SET enable_seqscan = off;
ALTER FUNCTION ledger_place_hold(uuid, bigint, uuid, timestamptz, text, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION ledger_apply_transfer() SET enable_seqscan = off;
ALTER FUNCTION ledger_apply_hold() SET enable_seqscan = off;
ALTER FUNCTION ledger_apply_resolution() SET enable_seqscan = off;
ALTER FUNCTION ledger_check_posted_has_charge() SET enable_seqscan = off;

-- The customer's limits counted their whole history: every purchase read all of the customer's
-- verifications to count the open ones and those of the last minute (a customer with 100,000 past
-- verifications: 100,000 rows per purchase). The open ones get an index of their own; the
-- reservation of migration 0020 counts them on it, and the last minute's on (user_id, created_at).
CREATE INDEX verifications_user_open ON verifications (user_id, expires_at) WHERE state IN ('pending', 'waiting');
