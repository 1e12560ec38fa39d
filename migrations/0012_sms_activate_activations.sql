-- The SMS-Activate protocol's activation ids (src/sms-activate-api). Tools written for the protocol
-- read an activation id as an integer, so every verification a customer reaches through the
-- protocol gets one, written only by that module. Ids are never reused; gaps are harmless.
CREATE TABLE sms_activate_activations (
  activation_id   bigserial PRIMARY KEY,
  verification_id uuid NOT NULL UNIQUE REFERENCES verifications(id)
);
