-- Messaging channels (Telegram, WhatsApp): the webhook inbox, the channel identities bound to end
-- users and the one-time codes that bind them, and the outbox of provider sends. Policies and
-- grants follow the rules of 0003; each one is listed with its reason in POLICIES.md.

-- Webhook items stored before they are acknowledged, so a crash replays them; the provider's id of
-- an item (dedup_key) makes a redelivered webhook a no-op.
CREATE TABLE inbox (
    -- monotonic: pending items are replayed in arrival order
    id           bigserial PRIMARY KEY,
    creator_id   uuid   NOT NULL,
    channel      text   NOT NULL CHECK (channel IN ('web', 'telegram', 'whatsapp')),
    dedup_key    text   NOT NULL,
    -- the item as the channel adapter parsed it (JSON text, read back as written)
    payload      text   NOT NULL,
    -- milliseconds since the Unix epoch, by the engine's clock
    received_at  bigint NOT NULL,
    -- NULL until the item was fed to its conversation (or deliberately dropped)
    processed_at bigint,
    UNIQUE (creator_id, channel, dedup_key)
);

-- The replay scan: pending items by id.
CREATE INDEX inbox_pending ON inbox (id) WHERE processed_at IS NULL;

-- A Telegram user id or a WhatsApp number, bound to the creator's end user it speaks for.
CREATE TABLE channel_identities (
    creator_id  uuid   NOT NULL,
    channel     text   NOT NULL CHECK (channel IN ('web', 'telegram', 'whatsapp')),
    external_id text   NOT NULL,
    user_id     text   NOT NULL,
    -- milliseconds; the time of the latest binding
    created_at  bigint NOT NULL,
    PRIMARY KEY (creator_id, channel, external_id)
);

-- One-time codes a user carries from one channel to another to link them (`/start <code>`).
CREATE TABLE link_codes (
    creator_id uuid   NOT NULL,
    code       text   NOT NULL,
    user_id    text   NOT NULL,
    -- milliseconds; a code taken at or after this is gone
    expires_at bigint NOT NULL,
    PRIMARY KEY (creator_id, code)
);

-- One entry per durable message for a provider channel, written in the same commit as the message.
CREATE TABLE outbox (
    creator_id          uuid   NOT NULL,
    conversation_id     uuid   NOT NULL,
    seq                 bigint NOT NULL,
    channel             text   NOT NULL CHECK (channel IN ('telegram', 'whatsapp')),
    -- the Telegram chat id or the WhatsApp number written to
    chat                text   NOT NULL,
    -- serde_json of twin_engine::channel::OutboxBody
    body                jsonb  NOT NULL,
    state               text   NOT NULL DEFAULT 'pending'
                               CHECK (state IN ('pending', 'sent', 'delivered', 'read', 'failed')),
    -- failed attempts so far
    attempts            bigint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- parts of the rendered message the provider accepted; a retry resumes after them
    parts_done          bigint NOT NULL DEFAULT 0 CHECK (parts_done >= 0),
    -- milliseconds; the due scan's key while pending
    next_attempt_at     bigint NOT NULL,
    -- the provider's id of the last part accepted; status reports name it
    provider_message_id text,
    -- the first error reported (a later one does not replace it)
    error               text,
    -- milliseconds, by the engine's clock
    created_at          bigint NOT NULL,
    updated_at          bigint NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    -- an entry always sends a stored message ...
    FOREIGN KEY (conversation_id, seq) REFERENCES messages (conversation_id, seq),
    -- ... of a conversation of the same tenant (tenant-preserving, as messages and nudges). A flush
    -- writes a tenant's messages before its outbox entries, so both hold at once.
    FOREIGN KEY (conversation_id, creator_id) REFERENCES conversations (id, creator_id)
);

-- The outbox worker's scan: pending entries by due time (creation breaks ties).
CREATE INDEX outbox_due ON outbox (next_attempt_at, created_at) WHERE state = 'pending';
-- Status reports find their entry by the provider's id. Not unique: Telegram's message ids are
-- unique per chat only (and Telegram sends no status reports); WhatsApp's wamid is global.
CREATE INDEX outbox_provider_message ON outbox (channel, provider_message_id) WHERE provider_message_id IS NOT NULL;

-- The shared WhatsApp webhook routes by the business number in the creator's profile.
CREATE INDEX creators_whatsapp_number ON creators ((profile->'channels'->'whatsapp'->>'phone_number_id'));

ALTER TABLE inbox              ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbox              FORCE ROW LEVEL SECURITY;
ALTER TABLE channel_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_identities FORCE ROW LEVEL SECURITY;
ALTER TABLE link_codes         ENABLE ROW LEVEL SECURITY;
ALTER TABLE link_codes         FORCE ROW LEVEL SECURITY;
ALTER TABLE outbox             ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox             FORCE ROW LEVEL SECURITY;

CREATE POLICY inbox_tenant ON inbox TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY channel_identities_tenant ON channel_identities TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY link_codes_tenant ON link_codes TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY outbox_tenant ON outbox TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

-- Items are stored and marked processed, never changed otherwise or deleted.
GRANT SELECT, INSERT ON inbox TO twin_app;
GRANT UPDATE (processed_at) ON inbox TO twin_app;
GRANT USAGE ON SEQUENCE inbox_id_seq TO twin_app;
-- A binding is replaced when the identity is linked again; never deleted.
GRANT SELECT, INSERT ON channel_identities TO twin_app;
GRANT UPDATE (user_id, created_at) ON channel_identities TO twin_app;
-- A code is replaced when issued again and deleted when used (or found expired).
GRANT SELECT, INSERT, DELETE ON link_codes TO twin_app;
GRANT UPDATE (user_id, expires_at) ON link_codes TO twin_app;
-- Entries are written by the conversation's commit and advanced by the outbox worker as the tenant;
-- never deleted.
GRANT SELECT, INSERT ON outbox TO twin_app;
GRANT UPDATE (state, attempts, parts_done, next_attempt_at, provider_message_id, error, updated_at) ON outbox TO twin_app;

-- Cross-tenant, the replay at start: the keys of pending items (which tenant, in which order).
-- Their payloads are read as the tenant.
GRANT SELECT (id, creator_id, processed_at) ON inbox TO twin_system;
CREATE POLICY inbox_system_pending ON inbox FOR SELECT TO twin_system
    USING (processed_at IS NULL);

-- Cross-tenant, the outbox worker: the keys and due times of pending entries (the due scan), and
-- the key and state of an entry a provider's status report names (routing it to its tenant).
-- Bodies and chats are read as the tenant.
GRANT SELECT (creator_id, conversation_id, seq, channel, state, next_attempt_at, created_at, provider_message_id)
    ON outbox TO twin_system;
CREATE POLICY outbox_system_due ON outbox FOR SELECT TO twin_system
    USING (state = 'pending');
CREATE POLICY outbox_system_status ON outbox FOR SELECT TO twin_system
    USING (provider_message_id IS NOT NULL);
