-- Store contract v2: an atomic token lifecycle.
--
-- * `spending`: a token consumed by a `complete` whose password write is in
--   flight. Revocation also kills it; `release` only returns it from
--   `spending`, so a revoked token is never revived.
-- * `deny_hash`: the "this wasn't me" link has a secret of its own (it can
--   never complete a reset); NULL for tokens issued before this migration,
--   whose deny links are therefore dead.
-- * `issue_token`: admit under the per-account limit, revoke the account's
--   live tokens (newest wins) and insert, as one statement serialised per
--   account.
-- * Outbox rows carry the hashes of the tokens their links hold, and a
--   message whose links died while it waited is `dropped`, not sent.

ALTER TABLE __SCHEMA__.tokens DROP CONSTRAINT IF EXISTS tokens_state_check;
ALTER TABLE __SCHEMA__.tokens ADD CONSTRAINT tokens_state_check
    CHECK (state IN ('active', 'spending', 'used', 'revoked'));
ALTER TABLE __SCHEMA__.tokens ADD COLUMN deny_hash bytea
    CHECK (deny_hash IS NULL OR octet_length(deny_hash) = 32);
CREATE UNIQUE INDEX tokens_deny_hash ON __SCHEMA__.tokens (deny_hash) WHERE deny_hash IS NOT NULL;
DROP INDEX IF EXISTS __SCHEMA__.tokens_account_active;
CREATE INDEX tokens_account_live ON __SCHEMA__.tokens (account_id) WHERE state IN ('active', 'spending');

ALTER TABLE __SCHEMA__.outbox ADD COLUMN token_hashes bytea[] NOT NULL DEFAULT '{}';
ALTER TABLE __SCHEMA__.outbox DROP CONSTRAINT IF EXISTS outbox_status_check;
ALTER TABLE __SCHEMA__.outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'claimed', 'sent', 'failed', 'dropped'));

-- Returns -1 when the per-account limit refused the token (nothing stored),
-- else how many older tokens were revoked. p_window_start / p_max NULL: no
-- limit. Serialised per account by the advisory lock rate_admit takes for
-- the account's key, so admission, revocation and insertion of concurrent
-- issues never interleave; each statement of this VOLATILE function sees
-- every row committed before the lock was granted.
CREATE FUNCTION __SCHEMA__.issue_token(
    p_hash bytea, p_account text, p_sent_to text, p_stamp text,
    p_issued timestamptz, p_expires timestamptz, p_deny bytea,
    p_window_start timestamptz, p_max bigint, p_supersede boolean)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    k text := 'account:' || p_account;
    n bigint;
    revoked bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('resetkit.rate_hit:' || k, 0));
    IF p_max IS NOT NULL THEN
        DELETE FROM __SCHEMA__.rate_hits WHERE key = k AND at <= p_window_start;
        SELECT count(*) INTO n FROM __SCHEMA__.rate_hits
            WHERE key = k AND at > p_window_start AND at <= p_issued;
        IF n >= p_max THEN
            RETURN -1;
        END IF;
        INSERT INTO __SCHEMA__.rate_hits (key, at) VALUES (k, p_issued);
    END IF;
    IF p_supersede THEN
        UPDATE __SCHEMA__.tokens SET state = 'revoked', state_at = p_issued, revoke_reason = 'superseded'
            WHERE account_id = p_account AND state IN ('active', 'spending');
        GET DIAGNOSTICS revoked = ROW_COUNT;
    END IF;
    INSERT INTO __SCHEMA__.tokens
        (hash, account_id, sent_to, password_stamp, issued_at, expires_at, state, deny_hash)
        VALUES (p_hash, p_account, p_sent_to, p_stamp, p_issued, p_expires, 'active', p_deny);
    RETURN revoked;
END
$fn$;
