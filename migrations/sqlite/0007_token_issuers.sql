-- End-user tokens signed by a creator's own platform carry that platform's `iss`; verification
-- finds the creator by it (`creator_by_token_issuer`).
CREATE INDEX creators_token_issuer ON creators (json_extract(profile, '$.user_tokens.issuer'));
