-- Version 2 leaves: who submitted each record, whether a client or Custos
-- wrote it, and tagged extensions. Rows written before keep version 1.
ALTER TABLE events ADD COLUMN leaf_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN leaf_kind    INTEGER NOT NULL DEFAULT 1; -- 1 client event, 3 server event
ALTER TABLE events ADD COLUMN submitted_by TEXT    NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN ext          BLOB;                      -- extension section as hashed, NULL for none

-- Records of server state (keys, and later roles, users, blocks…): leaves
-- of the ledger like events, of a kind only the server writes.
CREATE TABLE state_records (
	idx          INTEGER PRIMARY KEY,
	ts           INTEGER NOT NULL,
	submitted_by TEXT    NOT NULL,
	entity       TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	op           TEXT    NOT NULL,
	doc          TEXT              -- canonical JSON; NULL for a delete
);

-- The projection of the state records: one row per live entity, written in
-- the same transaction as the record that sets it. verify replays the
-- records and fails on any row the replay does not produce.
CREATE TABLE state (
	entity TEXT    NOT NULL,
	id     TEXT    NOT NULL,
	doc    TEXT    NOT NULL,
	idx    INTEGER NOT NULL,
	PRIMARY KEY (entity, id)
) WITHOUT ROWID;

-- Witnesses' cosignatures of a checkpoint (C2SP tlog-cosignature signature
-- lines), added as they arrive. Each line is signed by its witness, so a
-- forged one is worthless; verify --witness-key checks them.
ALTER TABLE checkpoints ADD COLUMN cosignatures BLOB;
