-- Indexes for the creator REST API's pages (twin_store::admin), as PostgreSQL's 0010_rest.sql.

-- A tenant's conversations by id (`GET /v1/creators/{slug}/conversations`).
CREATE INDEX conversations_creator_id ON conversations (creator_id, id);

-- A tenant's nudges of one status by due time (`GET /v1/creators/{slug}/nudges`).
CREATE INDEX nudges_creator_status_due ON nudges (creator_id, status, due_at, id);
