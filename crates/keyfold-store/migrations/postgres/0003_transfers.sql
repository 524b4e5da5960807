-- Transfers (`/transfers`, built by Keyfold) and broadcast transactions (`/transactions`,
-- built by the caller): written before anything is built, the signed bytes stored before
-- they are broadcast, settled by the tracker.
CREATE TABLE transfers (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    wallet_id       TEXT NOT NULL REFERENCES wallets(id),
    network         TEXT NOT NULL,
    resource        TEXT NOT NULL,
    requester_id    TEXT NOT NULL,
    token_id        TEXT,
    kind            TEXT NOT NULL,
    request_body    TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT,
    contract        TEXT,
    recipient       TEXT,
    amount          TEXT,
    nonce           BIGINT,
    details         TEXT,
    signed_tx       TEXT,
    tx_hash         TEXT,
    fee             TEXT,
    block_number    BIGINT,
    block_time      BIGINT,
    external_id     TEXT,
    user_action_id  TEXT,
    created_at      BIGINT NOT NULL,
    broadcast_at    BIGINT,
    confirmed_at    BIGINT,
    send_lease_until BIGINT
);
CREATE UNIQUE INDEX transfers_external_id ON transfers (wallet_id, resource, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX transfers_wallet ON transfers (wallet_id, created_at DESC, id DESC);
CREATE INDEX transfers_unsettled ON transfers (created_at) WHERE status IN ('Executing', 'Broadcasted');

-- The next nonce Keyfold hands out per EVM wallet (never below the chain's own count).
CREATE TABLE wallet_nonces (
    wallet_id       TEXT PRIMARY KEY REFERENCES wallets(id),
    next_nonce      BIGINT NOT NULL
);

-- Nonces handed out whose transaction was never broadcast: the next transfer takes the
-- lowest, so no gap holds later transactions back.
CREATE TABLE wallet_free_nonces (
    wallet_id       TEXT NOT NULL REFERENCES wallets(id),
    nonce           BIGINT NOT NULL,
    PRIMARY KEY (wallet_id, nonce)
);
