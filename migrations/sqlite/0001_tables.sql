-- The embedded schema: the same tables and meaning as PostgreSQL's. SQLite has no row-level
-- security, so every query filters by creator_id explicitly. Ids are hyphenated UUID text.

CREATE TABLE creators (
    id           TEXT    NOT NULL PRIMARY KEY,
    slug         TEXT    NOT NULL UNIQUE,
    -- serde_json of twin_engine::twin::CreatorProfile
    profile      TEXT    NOT NULL,
    -- sha-256 over the profile and the sorted documents; an unchanged import writes nothing
    content_hash TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0),
    updated_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE knowledge_documents (
    creator_id   TEXT NOT NULL REFERENCES creators (id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    body         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (creator_id, path)
);

CREATE TABLE conversations (
    id         TEXT    NOT NULL PRIMARY KEY,
    creator_id TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    -- milliseconds since the Unix epoch, as the engine's Timestamp
    created_at INTEGER NOT NULL,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (creator_id, user_id),
    -- target of the messages' tenant-preserving foreign key
    UNIQUE (id, creator_id)
);

CREATE TABLE messages (
    conversation_id TEXT    NOT NULL,
    seq             INTEGER NOT NULL CHECK (seq > 0),
    creator_id      TEXT    NOT NULL,
    origin          TEXT    NOT NULL CHECK (origin IN ('user', 'twin', 'program', 'nudge', 'human')),
    body            TEXT    NOT NULL,
    client_id       TEXT,
    stream          TEXT,
    -- milliseconds since the Unix epoch
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    FOREIGN KEY (conversation_id, creator_id) REFERENCES conversations (id, creator_id)
) WITHOUT ROWID;

-- A resent user message (same client id) is refused, so a retry is never stored twice.
CREATE UNIQUE INDEX messages_client_id ON messages (conversation_id, client_id) WHERE client_id IS NOT NULL;
