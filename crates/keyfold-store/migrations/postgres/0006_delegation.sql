-- Keys created with `delayDelegation`: non-custodial from the start (the organization can
-- never sign with them) and waiting for `POST /keys/{id}/delegate` to name their end user.
ALTER TABLE keys ADD COLUMN delegation_pending BOOLEAN NOT NULL DEFAULT FALSE;
