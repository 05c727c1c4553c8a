//! The SQLite store's schema, one migration a version, run in order on open (tracked in
//! `_tokengate_migrations`). A migration, once released, is never edited: a change is a new one.

const MIGRATION_1: &str = "\
CREATE TABLE IF NOT EXISTS tokengate_keys (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('api_key', 'm2m_token')),
    secret_hash BLOB NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    claims TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    revocation_reason TEXT,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS tokengate_keys_secret_hash ON tokengate_keys (secret_hash);
CREATE INDEX IF NOT EXISTS tokengate_keys_subject ON tokengate_keys (subject, created_at);
";

/// Indexes for listing in pages: by creation time (SQLite appends the rowid, the tie-breaker),
/// and a subject's keys by name.
const MIGRATION_2: &str = "\
CREATE INDEX IF NOT EXISTS tokengate_keys_created ON tokengate_keys (created_at);
CREATE INDEX IF NOT EXISTS tokengate_keys_subject_name ON tokengate_keys (subject, name);
";

/// The key lifecycle: disabled keys, the secret a reroll replaced (indexed for lookups while
/// it lasts), and the audit trail, kept after a key is deleted.
const MIGRATION_3: &str = "\
ALTER TABLE tokengate_keys ADD COLUMN disabled_at INTEGER;
ALTER TABLE tokengate_keys ADD COLUMN rate_limit TEXT;
ALTER TABLE tokengate_keys ADD COLUMN previous_secret_hash BLOB;
ALTER TABLE tokengate_keys ADD COLUMN grace_until INTEGER;
CREATE UNIQUE INDEX IF NOT EXISTS tokengate_keys_previous_secret_hash ON tokengate_keys (previous_secret_hash)
    WHERE previous_secret_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS tokengate_key_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokengate_key_events_key ON tokengate_key_events (key_id, seq);
";

/// A subject's keys of one name, in the listing's order (`created_at`, then `rowid`): with only
/// `(subject, name)` the planner may walk the subject's keys by creation time and filter them
/// by name, every key of a subject with many (development mode's start on a large table).
const MIGRATION_4: &str = "\
DROP INDEX IF EXISTS tokengate_keys_subject_name;
CREATE INDEX IF NOT EXISTS tokengate_keys_subject_name_created ON tokengate_keys (subject, name, created_at);
";

/// The table keyed by what a request looks a key up by: a lookup of an uncached key is one
/// descent of one B-tree (the row is stored in the primary key's tree) instead of a probe of the
/// `secret_hash` index and then of the table by row id, a page read fewer when keys are used in
/// no particular order (BENCHMARKS.md, "The slow path"). `seq` orders the keys created in the
/// same second (insertion order), in place of the row id the listing used, which a table
/// without row ids has not; the row id of each existing key becomes its `seq`.
const MIGRATION_5: &str = "\
CREATE TABLE tokengate_keys_by_hash (
    secret_hash BLOB PRIMARY KEY NOT NULL,
    id TEXT NOT NULL UNIQUE,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('api_key', 'm2m_token')),
    name TEXT NOT NULL,
    description TEXT,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    claims TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    revocation_reason TEXT,
    disabled_at INTEGER,
    rate_limit TEXT,
    previous_secret_hash BLOB,
    grace_until INTEGER
) WITHOUT ROWID;
INSERT INTO tokengate_keys_by_hash (secret_hash, id, seq, kind, name, description, subject, scopes, claims,
    created_at, expires_at, revoked_at, revocation_reason, disabled_at, rate_limit, previous_secret_hash,
    grace_until)
SELECT secret_hash, id, rowid, kind, name, description, subject, scopes, claims,
    created_at, expires_at, revoked_at, revocation_reason, disabled_at, rate_limit, previous_secret_hash,
    grace_until
FROM tokengate_keys;
CREATE TABLE tokengate_key_usage (
    id TEXT PRIMARY KEY NOT NULL,
    last_used_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO tokengate_key_usage (id, last_used_at)
SELECT id, last_used_at FROM tokengate_keys WHERE last_used_at IS NOT NULL;
DROP TABLE tokengate_keys;
ALTER TABLE tokengate_keys_by_hash RENAME TO tokengate_keys;
CREATE UNIQUE INDEX tokengate_keys_previous_secret_hash ON tokengate_keys (previous_secret_hash)
    WHERE previous_secret_hash IS NOT NULL;
CREATE UNIQUE INDEX tokengate_keys_created ON tokengate_keys (created_at, seq);
CREATE INDEX tokengate_keys_subject ON tokengate_keys (subject, created_at, seq);
CREATE INDEX tokengate_keys_subject_name_created ON tokengate_keys (subject, name, created_at, seq);
";

/// The migrations in order: `(description, sql)`, version 1 first.
pub(super) const MIGRATIONS: [(&str, &str); 5] = [
    ("tokengate keys", MIGRATION_1),
    ("tokengate key listing indexes", MIGRATION_2),
    ("tokengate key lifecycle and audit trail", MIGRATION_3),
    ("tokengate key listing by subject and name", MIGRATION_4),
    ("tokengate keys keyed by secret hash", MIGRATION_5),
];
