-- Accounts, rotating refresh tokens, the per-address login throttle and the audit log, as in
-- PostgreSQL's 0008. Times are milliseconds since the Unix epoch.

CREATE TABLE accounts (
    id                           TEXT    NOT NULL PRIMARY KEY,
    creator_id                   TEXT,
    creator_slug                 TEXT,
    email                        TEXT    NOT NULL CHECK (email = lower(email)),
    role                         TEXT    NOT NULL CHECK (role IN ('admin', 'creator', 'agent')),
    password_hash                TEXT    NOT NULL,
    created_at                   INTEGER NOT NULL,
    disabled_at                  INTEGER,
    last_login_at                INTEGER,
    failed_count                 INTEGER NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    last_failed_at               INTEGER,
    last_failed_address          TEXT,
    reported_failed_count        INTEGER NOT NULL DEFAULT 0 CHECK (reported_failed_count >= 0),
    reported_last_failed_at      INTEGER,
    reported_last_failed_address TEXT,
    CHECK ((role = 'admin') = (creator_id IS NULL)),
    CHECK ((creator_id IS NULL) = (creator_slug IS NULL))
);

CREATE UNIQUE INDEX accounts_email ON accounts (email);
CREATE INDEX accounts_creator ON accounts (creator_id, created_at);

CREATE TABLE refresh_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    family_id   TEXT    NOT NULL,
    account_id  TEXT    NOT NULL REFERENCES accounts (id),
    creator_id  TEXT,
    token_hash  TEXT    NOT NULL UNIQUE,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    revoked_at  INTEGER
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);

CREATE TABLE login_throttles (
    address         TEXT    NOT NULL PRIMARY KEY,
    failures        INTEGER NOT NULL CHECK (failures >= 0),
    last_failure_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    creator_id     TEXT,
    at             INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    target         TEXT,
    client_address TEXT,
    detail         TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_creator ON audit_log (creator_id, id);
