-- Another code sold as a new upstream order (docs/number-care.md): TextVerified's reuse makes a new
-- verification, DaisySMS's extra activation a new (charged) activation. Such a child owns its order:
-- it polls, cancels and finishes it itself, and the one-order-one-verification rule covers it as it
-- covers a purchase. A child of an upstream that keeps the same order (SMS-Activate setStatus 3, the
-- sandbox) still carries its parent's order id, so it stays outside the rule (own_order false, the
-- default: every row the previous release writes).
ALTER TABLE verifications ADD COLUMN own_order boolean NOT NULL DEFAULT false;
ALTER TABLE verifications ADD CONSTRAINT verifications_own_order_child CHECK (NOT (own_order AND parent_id IS NULL));
-- rolling-upgrade: compatible: the same unique index, widened to children owning their order (the previous release writes none)
DROP INDEX verifications_provider_order;
CREATE UNIQUE INDEX verifications_provider_order ON verifications (provider, provider_order_id)
  WHERE provider_order_id IS NOT NULL AND (parent_id IS NULL OR own_order);
