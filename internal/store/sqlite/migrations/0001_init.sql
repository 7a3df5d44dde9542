-- The ledger: one row per audit event, keyed by its ledger index. Rows are
-- only ever inserted. Every column feeds the leaf hash (see ledger.EncodeEvent).
CREATE TABLE events (
	idx                INTEGER PRIMARY KEY,
	ts                 INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
	occurred_at        INTEGER,
	user_id            TEXT    NOT NULL,
	user_name          TEXT    NOT NULL,
	user_roles         TEXT    NOT NULL, -- JSON array of strings
	action             TEXT    NOT NULL,
	resource_type      TEXT    NOT NULL,
	resource_id        TEXT    NOT NULL,
	patient_id         TEXT,             -- NULL when the event names no patient
	ip_address         TEXT,             -- NULL when none was sent
	user_agent         TEXT    NOT NULL,
	request_method     TEXT    NOT NULL,
	request_path       TEXT    NOT NULL,
	changes            TEXT,             -- compacted JSON, NULL for null
	outcome            TEXT    NOT NULL,
	status_code        INTEGER NOT NULL,
	source             TEXT    NOT NULL,
	request_id         TEXT    NOT NULL,
	session_id         TEXT    NOT NULL,
	purpose_of_use     TEXT    NOT NULL,
	break_glass        INTEGER NOT NULL,
	break_glass_reason TEXT    NOT NULL
);

-- The time index is append-only (timestamps never decrease), so it stays
-- cheap; the four randomly keyed indexes SPEC.md names live in the index
-- file (index_migrations/), written on their own connection in parallel.
CREATE INDEX events_ts_action ON events (ts, action);

-- Hashes of every perfect subtree, keyed by post-order position
-- (ledger.NodePos), so appends land at the end of the table.
CREATE TABLE tree_nodes (
	pos  INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);

-- Every signed checkpoint ever published.
CREATE TABLE checkpoints (
	size       INTEGER PRIMARY KEY,
	note       BLOB    NOT NULL,
	created_at INTEGER NOT NULL
);

-- API keys; each change is also a ledger record written in the same
-- transaction. hash is SHA-256 of the secret token.
CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	name       TEXT    NOT NULL,
	scopes     TEXT    NOT NULL,
	hash       BLOB    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	created_by TEXT    NOT NULL,
	revoked_at INTEGER
);
