-- Keyfold schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql: the same
-- tables, columns and indexes; only types differ (BOOLEAN, BLOB). Times are Unix
-- milliseconds (BIGINT) so both backends compare and sort them identically.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    is_active   BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE apps (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    expected_origin  TEXT,
    expected_rp_id   TEXT,
    public_key       TEXT,
    is_active        BOOLEAN NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX apps_org ON apps (org_id, created_at);

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs(id),
    username            TEXT NOT NULL,
    name                TEXT NOT NULL,
    kind                TEXT NOT NULL,
    is_active           BOOLEAN NOT NULL,
    is_registered       BOOLEAN NOT NULL,
    is_service_account  BOOLEAN NOT NULL,
    is_sso_required     BOOLEAN NOT NULL,
    is_archived         BOOLEAN NOT NULL,
    external_id         TEXT,
    public_key          TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
-- A username is unique among live users; a deleted (archived) user frees it.
CREATE UNIQUE INDEX users_username ON users (org_id, username) WHERE NOT is_archived;
CREATE UNIQUE INDEX users_external_id ON users (org_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX users_list ON users (org_id, created_at DESC, id DESC);

CREATE TABLE credentials (
    uuid                   TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES orgs(id),
    user_id                TEXT NOT NULL REFERENCES users(id),
    cred_id                TEXT NOT NULL,
    kind                   TEXT NOT NULL,
    name                   TEXT NOT NULL,
    public_key             TEXT NOT NULL,
    algorithm              TEXT,
    is_active              BOOLEAN NOT NULL,
    sign_count             BIGINT NOT NULL,
    encrypted_private_key  TEXT,
    created_at             BIGINT NOT NULL
);
CREATE UNIQUE INDEX credentials_cred_id ON credentials (org_id, cred_id);
CREATE INDEX credentials_user ON credentials (user_id, created_at);

CREATE TABLE one_time_codes (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    purpose     TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX one_time_codes_user ON one_time_codes (user_id, purpose);

CREATE TABLE challenges (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    challenge     TEXT NOT NULL,
    token_id      TEXT,
    http_method   TEXT,
    http_path     TEXT,
    payload_hash  TEXT,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX challenges_expiry ON challenges (expires_at);

CREATE TABLE access_tokens (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    is_active   BOOLEAN NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX access_tokens_user ON access_tokens (user_id);

CREATE TABLE user_actions (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    user_id          TEXT NOT NULL,
    token_id         TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    credential_uuid  TEXT NOT NULL,
    http_method      TEXT NOT NULL,
    http_path        TEXT NOT NULL,
    payload_hash     TEXT NOT NULL,
    challenge        TEXT NOT NULL,
    client_data      TEXT NOT NULL,
    signature        TEXT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX user_actions_org ON user_actions (org_id, created_at);

CREATE TABLE permissions (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    name          TEXT NOT NULL,
    operations    TEXT NOT NULL,
    is_immutable  BOOLEAN NOT NULL,
    is_archived   BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE permission_assignments (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id),
    permission_id  TEXT NOT NULL REFERENCES permissions(id),
    identity_id    TEXT NOT NULL,
    is_immutable   BOOLEAN NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX permission_assignments_unique ON permission_assignments (permission_id, identity_id);
CREATE INDEX permission_assignments_identity ON permission_assignments (identity_id);

CREATE TABLE jwt_keys (
    kid                 TEXT PRIMARY KEY,
    alg                 TEXT NOT NULL,
    sealed_private_key  BLOB NOT NULL,
    public_key          BLOB NOT NULL,
    is_current          BOOLEAN NOT NULL,
    created_at          BIGINT NOT NULL
);

CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    sent_at          BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
