-- Attempts at credential operations (login, registration, API-key creation), counted per account
-- and per client address in fixed windows. In the database, not in a process's memory, so every
-- API process shares one limit. `bucket` is `<action>:<scope>:<sha256 of the subject>`: the table
-- never holds an email or an address in clear.
CREATE TABLE auth_attempts (
  bucket       text        NOT NULL,
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,
  attempts     integer     NOT NULL CHECK (attempts > 0),
  PRIMARY KEY (bucket, window_start),
  CHECK (window_end > window_start)
);
-- Expired windows are pruned oldest first.
CREATE INDEX auth_attempts_window_end_idx ON auth_attempts (window_end);
