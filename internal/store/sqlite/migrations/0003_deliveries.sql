-- Idempotent delivery. A request sent with an Idempotency-Key names it in
-- its first event's leaf (the delivery extension); this table finds that
-- event by submitter and key, and its primary key refuses a second request
-- with the same key, so a retried request is never appended twice. A
-- projection of the leaves, written in the same transaction as the event.
CREATE TABLE deliveries (
	submitted_by TEXT   NOT NULL,
	key          TEXT   NOT NULL,
	idx          INTEGER NOT NULL,
	PRIMARY KEY (submitted_by, key)
) WITHOUT ROWID;
