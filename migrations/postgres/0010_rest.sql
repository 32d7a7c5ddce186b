-- Indexes for the creator REST API's pages (twin_store::admin). No new table, grant or policy:
-- the pages are read as twin_app with the tenant set, under the policies of 0003 and 0004.

-- A tenant's conversations by id (`GET /v1/creators/{slug}/conversations`): without it the page
-- walks the primary key across every tenant's conversations.
CREATE INDEX conversations_creator_id ON conversations (creator_id, id);

-- A tenant's nudges of one status by due time (`GET /v1/creators/{slug}/nudges`).
CREATE INDEX nudges_creator_status_due ON nudges (creator_id, status, due_at, id);
