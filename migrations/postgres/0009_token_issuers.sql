-- End-user tokens signed by a creator's own platform carry that platform's `iss`; verification
-- finds the creator by it (`creator_by_token_issuer`, as twin_system through the existing
-- creators_system_read policy). No new table, grant or policy: only the index of that lookup.
CREATE INDEX creators_token_issuer ON creators ((profile->'user_tokens'->>'issuer'));
