-- The tenant tables. Every row carries creator_id (creators: its own id) so row-level security
-- (0003) can hold; messages reference their conversation together with its creator, so a row can
-- never point into another tenant's conversation.

CREATE TABLE creators (
    id           uuid        PRIMARY KEY,
    slug         text        NOT NULL UNIQUE,
    -- serde_json of twin_engine::twin::CreatorProfile
    profile      jsonb       NOT NULL,
    -- sha-256 over the profile and the sorted documents; an unchanged import writes nothing
    content_hash text        NOT NULL,
    version      bigint      NOT NULL CHECK (version > 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE knowledge_documents (
    creator_id   uuid NOT NULL REFERENCES creators (id) ON DELETE CASCADE,
    path         text NOT NULL,
    body         text NOT NULL,
    content_hash text NOT NULL,
    PRIMARY KEY (creator_id, path)
);

CREATE TABLE conversations (
    id         uuid        PRIMARY KEY,
    creator_id uuid        NOT NULL,
    user_id    text        NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0),
    -- milliseconds since the Unix epoch, as the engine's Timestamp
    created_at bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (creator_id, user_id),
    -- target of the messages' tenant-preserving foreign key
    UNIQUE (id, creator_id)
);

CREATE TABLE messages (
    conversation_id uuid   NOT NULL,
    seq             bigint NOT NULL CHECK (seq > 0),
    creator_id      uuid   NOT NULL,
    origin          text   NOT NULL CHECK (origin IN ('user', 'twin', 'program', 'nudge', 'human')),
    body            text   NOT NULL,
    client_id       text,
    stream          text,
    -- milliseconds since the Unix epoch
    created_at      bigint NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    FOREIGN KEY (conversation_id, creator_id) REFERENCES conversations (id, creator_id)
);

-- A resent user message (same client id) is refused, so a retry is never stored twice.
CREATE UNIQUE INDEX messages_client_id ON messages (conversation_id, client_id) WHERE client_id IS NOT NULL;

GRANT SELECT, INSERT, UPDATE ON creators TO twin_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON knowledge_documents TO twin_app;
GRANT SELECT, INSERT, UPDATE ON conversations TO twin_app;
GRANT SELECT, INSERT ON messages TO twin_app;

GRANT SELECT ON creators TO twin_system;
