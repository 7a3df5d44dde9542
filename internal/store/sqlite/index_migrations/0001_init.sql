-- The secondary indexes of the events table, kept in their own database file
-- so that a second connection maintains them in parallel with the ledger's
-- commits. Everything here is derived from the ledger and can be rebuilt
-- from it; a query joins back to events and re-checks the key, so a stale
-- entry can never make a query return a wrong event.
CREATE TABLE ix_user (
	user_id TEXT    NOT NULL,
	ts      INTEGER NOT NULL,
	idx     INTEGER NOT NULL,
	PRIMARY KEY (user_id, ts, idx)
) WITHOUT ROWID;

CREATE TABLE ix_resource (
	resource_type TEXT    NOT NULL,
	resource_id   TEXT    NOT NULL,
	ts            INTEGER NOT NULL,
	idx           INTEGER NOT NULL,
	PRIMARY KEY (resource_type, resource_id, ts, idx)
) WITHOUT ROWID;

CREATE TABLE ix_patient (
	patient_id TEXT    NOT NULL,
	ts         INTEGER NOT NULL,
	idx        INTEGER NOT NULL,
	PRIMARY KEY (patient_id, ts, idx)
) WITHOUT ROWID;

CREATE TABLE ix_ip (
	ip_address TEXT    NOT NULL,
	ts         INTEGER NOT NULL,
	idx        INTEGER NOT NULL,
	PRIMARY KEY (ip_address, ts, idx)
) WITHOUT ROWID;

-- upto: every event with a smaller index is indexed.
CREATE TABLE ix_state (
	id   INTEGER PRIMARY KEY CHECK (id = 0),
	upto INTEGER NOT NULL
);
INSERT INTO ix_state (id, upto) VALUES (0, 0);
