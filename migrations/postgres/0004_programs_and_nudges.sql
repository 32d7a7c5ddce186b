-- Coaching programs (immutable versions), the conversation's durable state, the choices offered
-- with a message, and the nudge table the scheduler claims from. Policies and grants follow the
-- rules of 0003; each one is listed with its reason in POLICIES.md.

-- serde_json of twin_engine::conversation::ConversationState; '{}' is the default state, so the
-- conversations stored before this migration load as they were.
ALTER TABLE conversations ADD COLUMN state jsonb NOT NULL DEFAULT '{}'::jsonb;

-- serde_json of the message's Vec<Choice>, NULL when it offers none (most messages).
ALTER TABLE messages ADD COLUMN choices jsonb;

CREATE TABLE programs (
    creator_id   uuid        NOT NULL REFERENCES creators (id) ON DELETE CASCADE,
    program_id   text        NOT NULL,
    -- 1, 2, 3, … per program; a changed source becomes the next version, old ones stay for the
    -- enrolments pinned to them
    version      integer     NOT NULL CHECK (version > 0),
    -- the YAML as the creator wrote it
    source       text        NOT NULL,
    -- hex sha-256 of source; an import whose source hashes the same adds no version
    content_hash text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (creator_id, program_id, version)
);

CREATE TABLE nudges (
    -- NudgeId: name-based from (conversation, counter), so a replayed step writes the same row
    id              uuid   PRIMARY KEY,
    creator_id      uuid   NOT NULL,
    conversation_id uuid   NOT NULL,
    user_id         text   NOT NULL,
    -- milliseconds since the Unix epoch, as the engine's Timestamp
    due_at          bigint NOT NULL,
    status          text   NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'fired', 'skipped', 'cancelled')),
    -- a scheduler holds the nudge until then (milliseconds); NULL: nobody does
    claimed_until   bigint,
    -- milliseconds, by the database's clock (bookkeeping only; the engine's clock decides)
    created_at      bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint,
    settled_at      bigint,
    -- settled exactly when no longer pending, and only a pending nudge can be claimed
    CHECK ((status = 'pending') = (settled_at IS NULL)),
    CHECK (status = 'pending' OR claimed_until IS NULL),
    -- tenant-preserving, as messages: a nudge can never point into another tenant's conversation.
    -- A flush writes a tenant's conversations before its nudges, so a conversation created in the
    -- same commit as its first nudge satisfies this at once.
    FOREIGN KEY (conversation_id, creator_id) REFERENCES conversations (id, creator_id)
);

-- The scheduler's scan: pending nudges by due time (id breaks ties, so the order is stable).
CREATE INDEX nudges_pending_due ON nudges (due_at, id) WHERE status = 'pending';
-- One conversation's pending nudges (pending_of).
CREATE INDEX nudges_pending_conversation ON nudges (conversation_id, due_at) WHERE status = 'pending';

ALTER TABLE programs ENABLE ROW LEVEL SECURITY;
ALTER TABLE programs FORCE ROW LEVEL SECURITY;
ALTER TABLE nudges   ENABLE ROW LEVEL SECURITY;
ALTER TABLE nudges   FORCE ROW LEVEL SECURITY;

CREATE POLICY programs_tenant ON programs TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY nudges_tenant ON nudges TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

-- Program versions are immutable: no UPDATE or DELETE.
GRANT SELECT, INSERT ON programs TO twin_app;
-- Nudges are scheduled and settled by the conversation's commits; never deleted.
GRANT SELECT, INSERT, UPDATE ON nudges TO twin_app;

-- Cross-tenant, the scheduler: it reads pending nudges (what it needs to route one to its
-- conversation, and its claim) and can change nothing but the claim of a pending nudge.
GRANT SELECT (id, creator_id, conversation_id, user_id, due_at, status, claimed_until) ON nudges TO twin_system;
GRANT UPDATE (claimed_until) ON nudges TO twin_system;

CREATE POLICY nudges_system_read ON nudges FOR SELECT TO twin_system
    USING (status = 'pending');

CREATE POLICY nudges_system_claim ON nudges FOR UPDATE TO twin_system
    USING (status = 'pending')
    WITH CHECK (status = 'pending');
