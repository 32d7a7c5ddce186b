-- Coaching programs (immutable versions), the conversation's durable state, the choices offered
-- with a message, and the nudge table the scheduler claims from. The same meaning as PostgreSQL's
-- 0004; ids are hyphenated UUID text, times milliseconds since the Unix epoch.

-- serde_json of twin_engine::conversation::ConversationState; '{}' is the default state.
ALTER TABLE conversations ADD COLUMN state TEXT NOT NULL DEFAULT '{}';

-- serde_json of the message's Vec<Choice>, NULL when it offers none (most messages).
ALTER TABLE messages ADD COLUMN choices TEXT;

CREATE TABLE programs (
    creator_id   TEXT    NOT NULL REFERENCES creators (id) ON DELETE CASCADE,
    program_id   TEXT    NOT NULL,
    -- 1, 2, 3, … per program; a changed source becomes the next version
    version      INTEGER NOT NULL CHECK (version > 0),
    -- the YAML as the creator wrote it
    source       TEXT    NOT NULL,
    -- hex sha-256 of source
    content_hash TEXT    NOT NULL,
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (creator_id, program_id, version)
) WITHOUT ROWID;

CREATE TABLE nudges (
    id              TEXT    NOT NULL PRIMARY KEY,
    creator_id      TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    due_at          INTEGER NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'fired', 'skipped', 'cancelled')),
    -- a scheduler holds the nudge until then; NULL: nobody does
    claimed_until   INTEGER,
    -- by the database's clock (bookkeeping only)
    created_at      INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    settled_at      INTEGER,
    CHECK ((status = 'pending') = (settled_at IS NULL)),
    CHECK (status = 'pending' OR claimed_until IS NULL),
    -- a flush writes a tenant's conversations before its nudges
    FOREIGN KEY (conversation_id, creator_id) REFERENCES conversations (id, creator_id)
);

CREATE INDEX nudges_pending_due ON nudges (due_at, id) WHERE status = 'pending';
CREATE INDEX nudges_pending_conversation ON nudges (conversation_id, due_at) WHERE status = 'pending';
