-- The ledger: one row per audit event. Rows are only ever inserted. Every
-- column feeds the leaf hash (see ledger.EncodeEvent). Partitioned by month
-- of the ledger timestamp (µs since the Unix epoch, UTC) so that retention
-- and archival can later detach whole periods; partitions are created by the
-- store as time reaches them.
CREATE TABLE events (
	idx                BIGINT  NOT NULL,
	ts                 BIGINT  NOT NULL,
	occurred_at        BIGINT,
	user_id            TEXT    NOT NULL,
	user_name          TEXT    NOT NULL,
	user_roles         TEXT    NOT NULL, -- JSON array of strings, as hashed
	action             TEXT    NOT NULL,
	resource_type      TEXT    NOT NULL,
	resource_id        TEXT    NOT NULL,
	patient_id         TEXT,
	ip_address         TEXT,
	user_agent         TEXT    NOT NULL,
	request_method     TEXT    NOT NULL,
	request_path       TEXT    NOT NULL,
	changes            TEXT,             -- compacted JSON exactly as hashed (not jsonb: it would reorder keys)
	outcome            TEXT    NOT NULL,
	status_code        INTEGER NOT NULL,
	source             TEXT    NOT NULL,
	request_id         TEXT    NOT NULL,
	session_id         TEXT    NOT NULL,
	purpose_of_use     TEXT    NOT NULL,
	break_glass        BOOLEAN NOT NULL,
	break_glass_reason TEXT    NOT NULL,
	PRIMARY KEY (idx, ts)
) PARTITION BY RANGE (ts);

-- The indexes SPEC.md names, each ending in (ts, idx) for keyset pages.
CREATE INDEX events_ts_action ON events (ts, action);
CREATE INDEX events_resource  ON events (resource_type, resource_id, ts, idx);
CREATE INDEX events_user_ts   ON events (user_id, ts, idx);
CREATE INDEX events_patient   ON events (patient_id, ts, idx) WHERE patient_id IS NOT NULL;
CREATE INDEX events_ip        ON events (ip_address, ts, idx) WHERE ip_address IS NOT NULL;

-- Hashes of every perfect subtree, keyed by post-order position (ledger.NodePos).
CREATE TABLE tree_nodes (
	pos  BIGINT PRIMARY KEY,
	hash BYTEA  NOT NULL
);

-- Every signed checkpoint ever published.
CREATE TABLE checkpoints (
	size       BIGINT PRIMARY KEY,
	note       BYTEA  NOT NULL,
	created_at BIGINT NOT NULL
);

-- API keys; each change is also a ledger record written in the same
-- transaction. hash is SHA-256 of the secret token.
CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	name       TEXT   NOT NULL,
	scopes     TEXT   NOT NULL,
	hash       BYTEA  NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	created_by TEXT   NOT NULL,
	revoked_at BIGINT
);
