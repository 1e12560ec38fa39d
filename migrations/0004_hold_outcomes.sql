-- How each hold ended, in one place: every check and report reads a hold's outcome through this
-- view instead of joining the ledger's tables again (owned by the ledger, src/ledger).
--
-- One row per hold:
--   outcome         NULL while the hold still reserves its amount; else posted (captured: the
--                   customer was charged), voided or expired (released: the amount came back);
--   charge_*        the capture transfer of a posted hold;
--   correction_*    the correction transfer that gave a wrongly captured charge back (at most one
--                   per charge: its idempotency key is derived from the charge, see chargeRefundKey
--                   in src/ledger/ledger.ts).
-- Every join is a LEFT JOIN on a unique key, so PostgreSQL drops the joins a query does not read.
CREATE VIEW ledger_hold_outcomes AS
SELECT h.id                 AS hold_id,
       h.account_id,
       h.verification_id,
       h.amount_minor,
       h.created_at         AS held_at,
       h.expires_at,
       r.outcome,
       r.actor              AS resolved_by,
       r.reason             AS resolution_reason,
       r.created_at         AS resolved_at,
       c.id                 AS charge_id,
       c.amount_minor       AS charge_minor,
       c.debit_account_id   AS charge_account_id,
       corr.id              AS correction_id,
       corr.amount_minor    AS correction_minor,
       corr.created_at      AS corrected_at
FROM ledger_holds h
LEFT JOIN ledger_hold_resolutions r ON r.hold_id = h.id
LEFT JOIN ledger_transfers c ON c.hold_id = h.id
LEFT JOIN ledger_transfers corr ON corr.idempotency_key = 'charge-refund:' || c.id::text;
