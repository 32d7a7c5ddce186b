-- GDPR export and erasure (adapters/store/src/gdpr.rs): what finds one end user's rows quickly, ties
-- webhook inbox rows to the person who sent them, and lets twin_app delete its own tenant's rows.
-- Every DELETE granted here is for erasure only; the tenant policies of 0003, 0004 and 0007 still
-- restrict it to the tenant set for the transaction. Each grant is listed in POLICIES.md.

-- The channel identity an inbox item is about (the sender of a message, edit or block; the
-- recipient of a status report), as the webhook parsed it: `event.from.user` or `event.recipient`
-- of the payload. Written by inbox_put; NULL for a payload that names nobody. Erasing a user
-- removes the inbox rows of every channel identity that speaks for them.
ALTER TABLE inbox ADD COLUMN sender text;

-- Rows stored before this migration: filled from their payloads (one that is not JSON stays NULL).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id, payload FROM inbox LOOP
        BEGIN
            UPDATE inbox
               SET sender = coalesce(r.payload::jsonb #>> '{event,from,user}', r.payload::jsonb #>> '{event,recipient}')
             WHERE id = r.id;
        EXCEPTION WHEN invalid_text_representation THEN
            NULL;
        END;
    END LOOP;
END
$$;

CREATE INDEX inbox_sender ON inbox (creator_id, channel, sender) WHERE sender IS NOT NULL;
-- One user's rows, settled ones too (the existing nudge indexes cover pending rows only).
CREATE INDEX nudges_conversation ON nudges (conversation_id);
CREATE INDEX channel_identities_user ON channel_identities (creator_id, user_id);
CREATE INDEX link_codes_user ON link_codes (creator_id, user_id);

-- Erasure only (a user's rows, or a whole creator's).
GRANT DELETE ON conversations, messages, nudges, inbox, channel_identities, outbox, programs, creators TO twin_app;
