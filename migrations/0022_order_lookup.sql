-- Finding a verification by its upstream order id (the purchase's guard against an order id given
-- twice, an incoming webhook's SMS): the unique index covers purchases only (parent_id IS NULL), so
-- a lookup that must see additional codes too could not use it and read the whole table, once per
-- purchase (docs/performance.md, "The order-id lookup"). This index covers every row with an order id.
CREATE INDEX verifications_order_lookup ON verifications (provider, provider_order_id) WHERE provider_order_id IS NOT NULL;
