-- Bitcoin coins (outpoints, `txid:vout`) a transfer of the wallet spends, held from before it
-- is signed: concurrent transfers never pick the same coin, so none replaces another in the
-- mempool. A transfer that never reached the chain lets go of its rows; a spent coin's row
-- is harmless (the node never offers that coin again).
CREATE TABLE wallet_reserved_outpoints (
    wallet_id       TEXT NOT NULL REFERENCES wallets(id),
    outpoint        TEXT NOT NULL,
    transfer_id     TEXT NOT NULL,
    PRIMARY KEY (wallet_id, outpoint)
);
CREATE INDEX wallet_reserved_outpoints_transfer ON wallet_reserved_outpoints (transfer_id);
