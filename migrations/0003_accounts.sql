-- Accounts, part 2: indexes for the admin user list (newest first, keyset pagination) and for
-- reading an account's audit trail.
CREATE INDEX users_created_idx ON users (created_at DESC, id DESC);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, id);
