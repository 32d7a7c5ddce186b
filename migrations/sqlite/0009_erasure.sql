-- GDPR export and erasure, as in PostgreSQL's 0011: the channel identity each inbox item is about
-- (`event.from.user` or `event.recipient` of its payload, written by inbox_put), and indexes that
-- find one end user's rows.

ALTER TABLE inbox ADD COLUMN sender TEXT;

UPDATE inbox
   SET sender = coalesce(json_extract(payload, '$.event.from.user'), json_extract(payload, '$.event.recipient'))
 WHERE json_valid(payload);

CREATE INDEX inbox_sender ON inbox (creator_id, channel, sender) WHERE sender IS NOT NULL;
CREATE INDEX nudges_conversation ON nudges (conversation_id);
CREATE INDEX channel_identities_user ON channel_identities (creator_id, user_id);
CREATE INDEX link_codes_user ON link_codes (creator_id, user_id);
