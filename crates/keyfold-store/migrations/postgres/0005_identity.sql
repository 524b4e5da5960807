-- Personal access tokens. A PAT is an `access_tokens` row of kind 'Pat' acting for its user,
-- with its own key (a `credentials` row whose `token_id` names the PAT: it signs that PAT's
-- user actions and nothing else — never a login as the user) and its own permission
-- assignments (`identity_id` = the token id). Its operations are its user's intersected with
-- its own, per request.
ALTER TABLE access_tokens ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX access_tokens_external ON access_tokens (org_id, external_id);
ALTER TABLE credentials ADD COLUMN token_id TEXT;

-- Credentials added after registration (`/auth/credentials`): the challenge remembers what
-- it was issued for (the credential kind; for WebAuthn the relying party's registration
-- state) and a WebAuthn credential keeps the library's record of it (public key, counter).
ALTER TABLE challenges ADD COLUMN detail TEXT;
ALTER TABLE credentials ADD COLUMN detail TEXT;
-- One-time codes found by their hash alone (the credential code flow has no other handle).
CREATE INDEX one_time_codes_hash ON one_time_codes (code_hash);

-- Applications. A token obtained through a server-side application (`X-DFNS-APPID` at
-- login) is bound to it: every request with that token must carry the app's signature.
ALTER TABLE access_tokens ADD COLUMN app_id TEXT;
-- Nonces of server-side application signatures, each accepted once (kept until their
-- signature's freshness window has passed).
CREATE TABLE app_nonces (
    app_id      TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, nonce)
);
CREATE INDEX app_nonces_expiry ON app_nonces (expires_at);
