//! The PostgreSQL store's schema, one migration a version, run in order on connect (tracked in
//! `_tokengate_migrations`). A migration, once released, is never edited: a change is a new one.

const MIGRATION_1: &str = "\
CREATE TABLE IF NOT EXISTS tokengate_keys (
    seq BIGSERIAL NOT NULL,
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('api_key', 'm2m_token')),
    secret_hash BYTEA NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    subject TEXT NOT NULL,
    scopes JSONB NOT NULL,
    claims JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    revocation_reason TEXT,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX IF NOT EXISTS tokengate_keys_secret_hash ON tokengate_keys (secret_hash);
CREATE INDEX IF NOT EXISTS tokengate_keys_subject ON tokengate_keys (subject, created_at, seq);

CREATE OR REPLACE FUNCTION tokengate_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tokengate_key_revoked', encode(OLD.secret_hash, 'hex'));
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS tokengate_keys_changed ON tokengate_keys;
CREATE TRIGGER tokengate_keys_changed AFTER UPDATE ON tokengate_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
       OR OLD.scopes IS DISTINCT FROM NEW.scopes
       OR OLD.claims IS DISTINCT FROM NEW.claims
       OR OLD.subject IS DISTINCT FROM NEW.subject
       OR OLD.kind IS DISTINCT FROM NEW.kind
       OR OLD.secret_hash IS DISTINCT FROM NEW.secret_hash)
    EXECUTE FUNCTION tokengate_keys_notify();
DROP TRIGGER IF EXISTS tokengate_keys_deleted ON tokengate_keys;
CREATE TRIGGER tokengate_keys_deleted AFTER DELETE ON tokengate_keys FOR EACH ROW
    EXECUTE FUNCTION tokengate_keys_notify();
";

/// Indexes for listing in pages: by creation time then insertion (`seq`), and a subject's keys
/// by name.
const MIGRATION_2: &str = "\
CREATE INDEX IF NOT EXISTS tokengate_keys_created ON tokengate_keys (created_at, seq);
CREATE INDEX IF NOT EXISTS tokengate_keys_subject_name ON tokengate_keys (subject, name);
";

/// The key lifecycle: disabled keys, the secret a reroll replaced (indexed for lookups while
/// it lasts), the audit trail (kept after a key is deleted), and notices for every change a
/// verifier must see: both secrets' hashes, whatever changed but `last_used_at`.
const MIGRATION_3: &str = "\
ALTER TABLE tokengate_keys ADD COLUMN IF NOT EXISTS disabled_at BIGINT;
ALTER TABLE tokengate_keys ADD COLUMN IF NOT EXISTS rate_limit TEXT;
ALTER TABLE tokengate_keys ADD COLUMN IF NOT EXISTS previous_secret_hash BYTEA;
ALTER TABLE tokengate_keys ADD COLUMN IF NOT EXISTS grace_until BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS tokengate_keys_previous_secret_hash ON tokengate_keys (previous_secret_hash)
    WHERE previous_secret_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS tokengate_key_events (
    seq BIGSERIAL PRIMARY KEY,
    key_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    changes JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS tokengate_key_events_key ON tokengate_key_events (key_id, seq);

CREATE OR REPLACE FUNCTION tokengate_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tokengate_key_revoked', encode(OLD.secret_hash, 'hex'));
    IF OLD.previous_secret_hash IS NOT NULL THEN
        PERFORM pg_notify('tokengate_key_revoked', encode(OLD.previous_secret_hash, 'hex'));
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS tokengate_keys_changed ON tokengate_keys;
CREATE TRIGGER tokengate_keys_changed AFTER UPDATE ON tokengate_keys FOR EACH ROW
    WHEN ((OLD.kind, OLD.secret_hash, OLD.name, OLD.subject, OLD.scopes, OLD.claims, OLD.expires_at,
           OLD.revoked_at, OLD.disabled_at, OLD.previous_secret_hash, OLD.grace_until, OLD.rate_limit)
          IS DISTINCT FROM
          (NEW.kind, NEW.secret_hash, NEW.name, NEW.subject, NEW.scopes, NEW.claims, NEW.expires_at,
           NEW.revoked_at, NEW.disabled_at, NEW.previous_secret_hash, NEW.grace_until, NEW.rate_limit))
    EXECUTE FUNCTION tokengate_keys_notify();
";

/// A subject's keys of one name, in the listing's order (`created_at`, then `seq`): with only
/// `(subject, name)` the planner may walk the subject's keys by creation time and filter them
/// by name, every key of a subject with many (development mode's start on a large table).
const MIGRATION_4: &str = "\
DROP INDEX IF EXISTS tokengate_keys_subject_name;
CREATE INDEX IF NOT EXISTS tokengate_keys_subject_name_created ON tokengate_keys (subject, name, created_at, seq);
";

/// The migrations in order: `(description, sql)`, version 1 first.
pub(super) const MIGRATIONS: [(&str, &str); 4] = [
    ("tokengate keys", MIGRATION_1),
    ("tokengate key listing indexes", MIGRATION_2),
    ("tokengate key lifecycle and audit trail", MIGRATION_3),
    ("tokengate key listing by subject and name", MIGRATION_4),
];
