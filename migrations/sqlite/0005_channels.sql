-- Messaging channels: the webhook inbox, channel identities, link codes and the outbox of
-- provider sends, as in PostgreSQL's 0007. Times are milliseconds since the Unix epoch.

CREATE TABLE inbox (
    -- AUTOINCREMENT: ids are never reused, so pending items replay in arrival order
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    creator_id   TEXT    NOT NULL,
    channel      TEXT    NOT NULL CHECK (channel IN ('web', 'telegram', 'whatsapp')),
    dedup_key    TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    processed_at INTEGER,
    UNIQUE (creator_id, channel, dedup_key)
);

CREATE INDEX inbox_pending ON inbox (id) WHERE processed_at IS NULL;

CREATE TABLE channel_identities (
    creator_id  TEXT    NOT NULL,
    channel     TEXT    NOT NULL CHECK (channel IN ('web', 'telegram', 'whatsapp')),
    external_id TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (creator_id, channel, external_id)
) WITHOUT ROWID;

CREATE TABLE link_codes (
    creator_id TEXT    NOT NULL,
    code       TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (creator_id, code)
) WITHOUT ROWID;

CREATE TABLE outbox (
    creator_id          TEXT    NOT NULL,
    conversation_id     TEXT    NOT NULL,
    seq                 INTEGER NOT NULL,
    channel             TEXT    NOT NULL CHECK (channel IN ('telegram', 'whatsapp')),
    chat                TEXT    NOT NULL,
    -- serde_json of twin_engine::channel::OutboxBody
    body                TEXT    NOT NULL,
    state               TEXT    NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sent', 'delivered', 'read', 'failed')),
    attempts            INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    parts_done          INTEGER NOT NULL DEFAULT 0 CHECK (parts_done >= 0),
    next_attempt_at     INTEGER NOT NULL,
    provider_message_id TEXT,
    -- the first error reported
    error               TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    -- a stored message of a conversation of the same tenant; messages are written first
    FOREIGN KEY (conversation_id, seq) REFERENCES messages (conversation_id, seq),
    FOREIGN KEY (conversation_id, creator_id) REFERENCES conversations (id, creator_id)
) WITHOUT ROWID;

CREATE INDEX outbox_due ON outbox (next_attempt_at, created_at) WHERE state = 'pending';
CREATE INDEX outbox_provider_message ON outbox (channel, provider_message_id) WHERE provider_message_id IS NOT NULL;

-- The shared WhatsApp webhook routes by the business number in the creator's profile.
CREATE INDEX creators_whatsapp_number ON creators (json_extract(profile, '$.channels.whatsapp.phone_number_id'));
