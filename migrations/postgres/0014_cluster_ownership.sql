-- Scale-out (ARCHITECTURE §9): several nodes share this database. A conversation is owned by one
-- node at a time under an epoch, and every commit of that node carries a fence for its epoch
-- (Record::Fence), so a node that lost the conversation can no longer write. The shared work
-- queues (the outbox, the webhook inbox) get claims with a lease, so two nodes never work one row
-- at once. Policies and grants follow the rules of 0003; each one is listed with its reason in
-- POLICIES.md.

-- Epochs come from one sequence, not from the row: a conversation erased (its row deleted) and
-- claimed again still gets an epoch larger than any a stale writer may hold.
CREATE SEQUENCE conversation_owner_epochs AS bigint;

-- Who owns a conversation now, and under which epoch. No foreign key to conversations: a
-- conversation row is created by its first commit, which already carries the fence of this claim.
CREATE TABLE conversation_owners (
    creator_id      uuid   NOT NULL,
    conversation_id uuid   PRIMARY KEY,
    -- larger with every claim, never smaller: a commit fenced with another epoch is refused
    epoch           bigint NOT NULL CHECK (epoch > 0),
    -- the node that holds it; NULL once released (passivation, handover), the epoch staying
    node            text,
    -- milliseconds since the Unix epoch, by the database's clock; the latest claim
    claimed_at      bigint
);

-- Erasing a whole creator deletes its rows by tenant.
CREATE INDEX conversation_owners_creator ON conversation_owners (creator_id);

ALTER TABLE conversation_owners ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_owners FORCE ROW LEVEL SECURITY;

CREATE POLICY conversation_owners_tenant ON conversation_owners TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

-- A claim inserts the row or moves it to the next epoch (an upsert); a release clears the node;
-- a commit reads the epoch with a share lock. The tenant and the conversation never change.
-- DELETE is for GDPR erasure only (a user's row, or a whole creator's).
GRANT SELECT, INSERT, DELETE ON conversation_owners TO twin_app;
GRANT UPDATE (epoch, node, claimed_at) ON conversation_owners TO twin_app;
GRANT USAGE ON SEQUENCE conversation_owner_epochs TO twin_app;

-- Claims on the shared queues: milliseconds by the engine's clock until which one caller works the
-- row; NULL or passed, anyone may take it.
ALTER TABLE outbox ADD COLUMN claimed_until bigint;
ALTER TABLE inbox ADD COLUMN claimed_until bigint;

-- The outbox worker records each attempt as the tenant, which ends the claim (or renews it while
-- the parts of one message go out).
GRANT UPDATE (claimed_until) ON outbox TO twin_app;

-- Cross-tenant, the outbox worker's due scan claims the entries it returns (FOR UPDATE SKIP
-- LOCKED needs the update privilege too) and drops every claim at a single node's start. The
-- column grant keeps it from changing a state, a due time, a body or a tenant.
GRANT SELECT (claimed_until) ON outbox TO twin_system;
GRANT UPDATE (claimed_until) ON outbox TO twin_system;
CREATE POLICY outbox_system_claim ON outbox FOR UPDATE TO twin_system
    USING (state = 'pending')
    WITH CHECK (state = 'pending');

-- Cross-tenant, the inbox replay claims the pending items it feeds, by arrival time; same rules.
GRANT SELECT (received_at, claimed_until) ON inbox TO twin_system;
GRANT UPDATE (claimed_until) ON inbox TO twin_system;
CREATE POLICY inbox_system_claim ON inbox FOR UPDATE TO twin_system
    USING (processed_at IS NULL)
    WITH CHECK (processed_at IS NULL);

-- The claim scans skip claimed rows; releasing claims at start finds the few that hold one.
CREATE INDEX outbox_claimed ON outbox (claimed_until) WHERE state = 'pending' AND claimed_until IS NOT NULL;
CREATE INDEX inbox_claimed ON inbox (claimed_until) WHERE processed_at IS NULL AND claimed_until IS NOT NULL;
