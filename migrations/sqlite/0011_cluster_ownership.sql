-- Scale-out ownership and claims on the shared work queues, as PostgreSQL's 0014. Ids are
-- hyphenated UUID text, times milliseconds since the Unix epoch.

-- The last epoch handed out, over all conversations (one row): a conversation erased and claimed
-- again still gets an epoch larger than any a stale writer may hold.
CREATE TABLE conversation_owner_epochs (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO conversation_owner_epochs (id, last) VALUES (1, 0);

-- Who owns a conversation now, and under which epoch. No foreign key to conversations: a
-- conversation row is created by its first commit, which already carries the fence of this claim.
CREATE TABLE conversation_owners (
    creator_id      TEXT    NOT NULL,
    conversation_id TEXT    PRIMARY KEY,
    epoch           INTEGER NOT NULL CHECK (epoch > 0),
    -- NULL once released (passivation, handover), the epoch staying
    node            TEXT,
    -- by the database's clock
    claimed_at      INTEGER
);

CREATE INDEX conversation_owners_creator ON conversation_owners (creator_id);

-- Until then (by the engine's clock) one caller works the row; NULL or passed, anyone may take it.
ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
ALTER TABLE inbox ADD COLUMN claimed_until INTEGER;

CREATE INDEX outbox_claimed ON outbox (claimed_until) WHERE state = 'pending' AND claimed_until IS NOT NULL;
CREATE INDEX inbox_claimed ON inbox (claimed_until) WHERE processed_at IS NULL AND claimed_until IS NOT NULL;
