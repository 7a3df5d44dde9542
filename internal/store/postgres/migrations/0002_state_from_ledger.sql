-- Version 2 leaves: who submitted each record, whether a client or Custos
-- wrote it, and tagged extensions. Rows written before keep version 1.
ALTER TABLE events
	ADD COLUMN leaf_version SMALLINT NOT NULL DEFAULT 1,
	ADD COLUMN leaf_kind    SMALLINT NOT NULL DEFAULT 1, -- 1 client event, 3 server event
	ADD COLUMN submitted_by TEXT     NOT NULL DEFAULT '',
	ADD COLUMN ext          BYTEA;                       -- extension section as hashed, NULL for none

-- Records of server state (keys, and later roles, users, blocks…): leaves
-- of the ledger like events, of a kind only the server writes.
CREATE TABLE state_records (
	idx          BIGINT PRIMARY KEY,
	ts           BIGINT NOT NULL,
	submitted_by TEXT   NOT NULL,
	entity       TEXT   NOT NULL,
	id           TEXT   NOT NULL,
	op           TEXT   NOT NULL,
	doc          TEXT             -- canonical JSON; NULL for a delete
);

-- The projection of the state records: one row per live entity, written in
-- the same transaction as the record that sets it. verify replays the
-- records and fails on any row the replay does not produce.
CREATE TABLE state (
	entity TEXT   NOT NULL,
	id     TEXT   NOT NULL,
	doc    TEXT   NOT NULL,
	idx    BIGINT NOT NULL,
	PRIMARY KEY (entity, id)
);

-- Witnesses' cosignatures of a checkpoint (C2SP tlog-cosignature signature
-- lines), added as they arrive. Each line is signed by its witness, so a
-- forged one is worthless; verify --witness-key checks them.
ALTER TABLE checkpoints ADD COLUMN cosignatures BYTEA;
