-- Releasing claims at start must not scan the whole nudge table: only rows holding a claim are indexed.
CREATE INDEX nudges_claimed ON nudges (claimed_until) WHERE status = 'pending' AND claimed_until IS NOT NULL;
