-- Per-creator stats, as PostgreSQL's 0013: the durable history of program steps entered (which the
-- program funnel counts) and the index the stats reads of messages go by. Ids are hyphenated UUID
-- text, times milliseconds since the Unix epoch.

CREATE TABLE step_entries (
    creator_id      TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    program         TEXT    NOT NULL,
    step            TEXT    NOT NULL,
    -- by the engine's clock
    entered_at      INTEGER NOT NULL,
    -- a commit writes a tenant's conversations before its step entries
    FOREIGN KEY (conversation_id, creator_id) REFERENCES conversations (id, creator_id)
);

CREATE INDEX step_entries_funnel ON step_entries (creator_id, entered_at);
CREATE INDEX step_entries_conversation ON step_entries (conversation_id);
CREATE INDEX messages_creator_created ON messages (creator_id, created_at);
