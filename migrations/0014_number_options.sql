-- Number options: the area codes, carriers and capability (sms or voice) a customer asked for,
-- in canonical form; NULL for a plain purchase (any number, by SMS). The price and the hold of such
-- a verification already include the options' surcharge (price_minor, max_cost_minor).
ALTER TABLE verifications ADD COLUMN number_options jsonb;

-- Whether an offer can be bought with a voice call instead of an SMS (the upstream lists the service
-- as voice-capable). Existing offers are SMS only until the catalogue is synced or seeded again.
ALTER TABLE services ADD COLUMN voice boolean NOT NULL DEFAULT false;
