-- Releasing claims at start (a single node drops every claim) must not scan the whole nudge table:
-- only the few rows that hold a claim are indexed.
CREATE INDEX nudges_claimed ON nudges (claimed_until) WHERE status = 'pending' AND claimed_until IS NOT NULL;
