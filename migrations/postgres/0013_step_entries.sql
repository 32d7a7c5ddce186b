-- Per-creator stats (twin_store::stats, `GET /v1/creators/{slug}/stats`): the durable history of
-- program steps entered, which the program funnel counts (a conversation's state keeps only its
-- current step), and the indexes the stats reads go by. Policy and grant follow the rules of 0003;
-- both are listed with their reason in POLICIES.md.

-- One row per step a conversation entered, written in the same commit as the state that holds the
-- step (Record::StepEntered). Append-only: a step entered again is another row.
CREATE TABLE step_entries (
    creator_id      uuid   NOT NULL,
    conversation_id uuid   NOT NULL,
    program         text   NOT NULL,
    step            text   NOT NULL,
    -- milliseconds since the Unix epoch, by the engine's clock
    entered_at      bigint NOT NULL,
    -- tenant-preserving, as messages and nudges: an entry can never point into another tenant's
    -- conversation. A commit writes a tenant's conversations before its step entries.
    FOREIGN KEY (conversation_id, creator_id) REFERENCES conversations (id, creator_id)
);

-- The funnel: a tenant's entries in a period, by program and step.
CREATE INDEX step_entries_funnel ON step_entries (creator_id, entered_at);
-- One conversation's entries (GDPR erasure and export of a user).
CREATE INDEX step_entries_conversation ON step_entries (conversation_id);

-- The stats reads of messages: a tenant's messages in a period (messages per day, active users,
-- reply latency). Without it they walk every tenant's messages.
CREATE INDEX messages_creator_created ON messages (creator_id, created_at);
-- Fired nudges by due time: the existing (creator_id, status, due_at, id) index of 0010 serves it.

ALTER TABLE step_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE step_entries FORCE ROW LEVEL SECURITY;

CREATE POLICY step_entries_tenant ON step_entries TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

-- Written by the conversation's commits, read by the stats. DELETE is for GDPR erasure only (a
-- user's rows, or a whole creator's), as in 0011. No UPDATE: entries are history.
GRANT SELECT, INSERT, DELETE ON step_entries TO twin_app;
