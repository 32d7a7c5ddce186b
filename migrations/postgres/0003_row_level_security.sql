-- Row-level security: twin_app sees and writes only the rows of the tenant set for the current
-- transaction (set_config('app.creator_id', id, true)); with no tenant set it sees nothing.
-- twin_system gets narrow, explicit policies. Each policy is listed with its reason in POLICIES.md.

ALTER TABLE creators            ENABLE ROW LEVEL SECURITY;
ALTER TABLE creators            FORCE ROW LEVEL SECURITY;
ALTER TABLE knowledge_documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge_documents FORCE ROW LEVEL SECURITY;
ALTER TABLE conversations       ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations       FORCE ROW LEVEL SECURITY;
ALTER TABLE messages            ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages            FORCE ROW LEVEL SECURITY;

CREATE POLICY creators_tenant ON creators TO twin_app
    USING (id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY knowledge_documents_tenant ON knowledge_documents TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY conversations_tenant ON conversations TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY messages_tenant ON messages TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

-- Cross-tenant: list creators and resolve a slug (import, routing a webhook to its creator).
CREATE POLICY creators_system_read ON creators FOR SELECT TO twin_system
    USING (true);
