-- Accounts of operators (admin), creators and their agents; rotating refresh tokens; the per-address
-- login throttle; the audit log of security-relevant actions. End users are not accounts. Times are
-- milliseconds since the Unix epoch. Policies and grants follow the rules of 0003; each one is
-- listed with its reason in POLICIES.md.

CREATE TABLE accounts (
    id                           uuid   PRIMARY KEY,
    -- the tenant; NULL for admins (operators of the whole server)
    creator_id                   uuid,
    -- the tenant's slug, what creator paths name (a creator's id derives from it: it never changes)
    creator_slug                 text,
    -- stored lowercased: one account per address whatever its case
    email                        text   NOT NULL CHECK (email = lower(email)),
    role                         text   NOT NULL CHECK (role IN ('admin', 'creator', 'agent')),
    -- argon2id PHC string
    password_hash                text   NOT NULL,
    created_at                   bigint NOT NULL,
    disabled_at                  bigint,
    last_login_at                bigint,
    -- failed logins since the last successful one (the per-account throttle, and what the owner
    -- is told)
    failed_count                 bigint NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    last_failed_at               bigint,
    last_failed_address          text,
    -- the same, as they stood when the last successful login cleared them
    reported_failed_count        bigint NOT NULL DEFAULT 0 CHECK (reported_failed_count >= 0),
    reported_last_failed_at      bigint,
    reported_last_failed_address text,
    CHECK ((role = 'admin') = (creator_id IS NULL)),
    CHECK ((creator_id IS NULL) = (creator_slug IS NULL))
);

CREATE UNIQUE INDEX accounts_email ON accounts (email);
CREATE INDEX accounts_creator ON accounts (creator_id, created_at);

-- The server keeps only the sha-256 of each opaque refresh token. A login starts a family; each
-- use marks its token used and adds the next one to the family.
CREATE TABLE refresh_tokens (
    id          uuid   PRIMARY KEY,
    family_id   uuid   NOT NULL,
    account_id  uuid   NOT NULL REFERENCES accounts (id),
    -- the account's tenant; NULL for admins
    creator_id  uuid,
    token_hash  text   NOT NULL UNIQUE,
    issued_at   bigint NOT NULL,
    expires_at  bigint NOT NULL,
    used_at     bigint,
    revoked_at  bigint
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);

-- Failed logins per client address (any email, known or not). Not tenant data: an address is not
-- any creator's. Never deleted on success (a caller with one valid account could otherwise reset
-- its count between guesses at another); a count older than the throttle's window starts over.
CREATE TABLE login_throttles (
    address         text   PRIMARY KEY,
    failures        bigint NOT NULL CHECK (failures >= 0),
    last_failure_at bigint NOT NULL
);

CREATE TABLE audit_log (
    -- monotonic: the cursor of the newest-first pages
    id             bigserial PRIMARY KEY,
    -- NULL for admin-level actions
    creator_id     uuid,
    at             bigint NOT NULL,
    -- an account id, or `system` / `cli`
    actor          text   NOT NULL,
    action         text   NOT NULL,
    target         text,
    client_address text,
    -- never passwords, tokens or message text
    detail         jsonb  NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_creator ON audit_log (creator_id, id);

ALTER TABLE accounts        ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts        FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens  ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens  FORCE ROW LEVEL SECURITY;
ALTER TABLE login_throttles ENABLE ROW LEVEL SECURITY;
ALTER TABLE login_throttles FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log       ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log       FORCE ROW LEVEL SECURITY;

-- Tenant work: a creator's own and their agents' accounts, their refresh families (revoked when an
-- agent is disabled), their audit log.
CREATE POLICY accounts_tenant ON accounts TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY refresh_tokens_tenant ON refresh_tokens TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY audit_log_tenant ON audit_log TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

-- The password hash is never readable as a tenant; accounts are disabled, never deleted.
GRANT SELECT (id, creator_id, creator_slug, email, role, created_at, disabled_at, last_login_at, failed_count, last_failed_at,
              last_failed_address, reported_failed_count, reported_last_failed_at, reported_last_failed_address)
    ON accounts TO twin_app;
GRANT INSERT (id, creator_id, creator_slug, email, role, password_hash, created_at) ON accounts TO twin_app;
GRANT UPDATE (disabled_at) ON accounts TO twin_app;
GRANT SELECT (id, family_id, account_id, creator_id, revoked_at) ON refresh_tokens TO twin_app;
GRANT UPDATE (revoked_at) ON refresh_tokens TO twin_app;
GRANT SELECT, INSERT ON audit_log TO twin_app;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO twin_app;

-- Cross-tenant, login: an email names its account before any tenant is known (the hash is
-- verified, the failure counters read and updated, an admin account is read by id).
CREATE POLICY accounts_system_login ON accounts FOR SELECT TO twin_system
    USING (true);
CREATE POLICY accounts_system_counters ON accounts FOR UPDATE TO twin_system
    USING (true) WITH CHECK (true);
GRANT SELECT (id, creator_id, creator_slug, email, role, password_hash, created_at, disabled_at, last_login_at, failed_count,
              last_failed_at, last_failed_address, reported_failed_count, reported_last_failed_at,
              reported_last_failed_address)
    ON accounts TO twin_system;
GRANT UPDATE (last_login_at, failed_count, last_failed_at, last_failed_address, reported_failed_count,
              reported_last_failed_at, reported_last_failed_address)
    ON accounts TO twin_system;
-- Admins belong to no tenant, so they are created outside one (`twin account create --role admin`,
-- `POST /v1/accounts`).
CREATE POLICY accounts_system_admins ON accounts FOR INSERT TO twin_system
    WITH CHECK (creator_id IS NULL AND creator_slug IS NULL AND role = 'admin');
GRANT INSERT (id, creator_id, creator_slug, email, role, password_hash, created_at) ON accounts TO twin_system;

-- Cross-tenant, refresh and logout: a refresh token is all the caller presents, so it is found by
-- its hash before the tenant is known; a login starts a family, a use rotates it, a reuse or a
-- logout revokes it.
CREATE POLICY refresh_tokens_system ON refresh_tokens TO twin_system
    USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON refresh_tokens TO twin_system;
GRANT UPDATE (used_at, revoked_at) ON refresh_tokens TO twin_system;

-- Cross-tenant, the per-address throttle: an address is no tenant's.
CREATE POLICY login_throttles_system ON login_throttles TO twin_system
    USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON login_throttles TO twin_system;
GRANT UPDATE (failures, last_failure_at) ON login_throttles TO twin_system;

-- Cross-tenant, admin-level audit entries (no tenant): written, never read or changed as
-- twin_system. A tenant's entries are written as that tenant.
CREATE POLICY audit_log_system_admin ON audit_log FOR INSERT TO twin_system
    WITH CHECK (creator_id IS NULL);
GRANT INSERT ON audit_log TO twin_system;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO twin_system;
