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

ALTER TABLE __SCHEMA__.tokens DROP CONSTRAINT tokens_state_check;
ALTER TABLE __SCHEMA__.tokens ADD CONSTRAINT tokens_state_check
    CHECK (state IN ('active', 'spending', 'used', 'revoked'));
ALTER TABLE __SCHEMA__.tokens ADD COLUMN deny_hash bytea
    CHECK (deny_hash IS NULL OR octet_length(deny_hash) = 32);
CREATE UNIQUE INDEX tokens_deny_hash ON __SCHEMA__.tokens (deny_hash) WHERE deny_hash IS NOT NULL;
DROP INDEX __SCHEMA__.tokens_account_active;
CREATE INDEX tokens_account_live ON __SCHEMA__.tokens (account_id) WHERE state IN ('active', 'spending');

ALTER TABLE __SCHEMA__.outbox ADD COLUMN token_hashes bytea[] NOT NULL DEFAULT '{}';
ALTER TABLE __SCHEMA__.outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE __SCHEMA__.outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'claimed', 'sent', 'failed', 'dropped'));

-- Every step that changes several tokens of one account (issue, finish,
-- deny, revoke) runs as a function that first takes the account's
-- transaction-scoped advisory lock (the key rate_admit uses for the
-- account), so such steps never interleave or deadlock, and each statement
-- after the lock sees every row committed before it (READ COMMITTED: each
-- statement of a VOLATILE plpgsql function takes a fresh snapshot; the
-- functions refuse to run under another isolation level, where that would
-- not hold). `consume` changes one row and relies on its row lock.
CREATE FUNCTION __SCHEMA__.lock_account(p_account text) RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'resetkit token steps need READ COMMITTED, not %', current_setting('transaction_isolation');
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('resetkit.rate_hit:account:' || p_account, 0));
END
$fn$;

-- Returns -1 when the per-account limit refused the token (nothing stored),
-- else how many older tokens were revoked. p_window_start / p_max NULL: no
-- limit.
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
    PERFORM __SCHEMA__.lock_account(p_account);
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

-- Spending -> used, and the account's other live tokens revoked
-- (password_reset). Reports the token's state as it is under the lock:
-- finished = false with state 'revoked' means it was revoked meanwhile.
CREATE FUNCTION __SCHEMA__.finish_token(p_hash bytea, p_at timestamptz,
    OUT finished boolean, OUT revoked bigint, OUT state text, OUT revoke_reason text)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    acct text;
BEGIN
    finished := false;
    revoked := 0;
    SELECT t.account_id INTO acct FROM __SCHEMA__.tokens t WHERE t.hash = p_hash;
    IF acct IS NULL THEN
        RETURN;
    END IF;
    PERFORM __SCHEMA__.lock_account(acct);
    UPDATE __SCHEMA__.tokens t SET state = 'used', state_at = p_at
        WHERE t.hash = p_hash AND t.state = 'spending';
    IF FOUND THEN
        finished := true;
        UPDATE __SCHEMA__.tokens t SET state = 'revoked', state_at = p_at, revoke_reason = 'password_reset'
            WHERE t.account_id = acct AND t.state IN ('active', 'spending') AND t.hash <> p_hash;
        GET DIAGNOSTICS revoked = ROW_COUNT;
    END IF;
    SELECT t.state, t.revoke_reason INTO state, revoke_reason FROM __SCHEMA__.tokens t WHERE t.hash = p_hash;
END
$fn$;

-- Revokes every live token of the account; returns how many.
CREATE FUNCTION __SCHEMA__.revoke_account_tokens(p_account text, p_reason text, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    n bigint;
BEGIN
    PERFORM __SCHEMA__.lock_account(p_account);
    UPDATE __SCHEMA__.tokens SET state = 'revoked', state_at = p_at, revoke_reason = p_reason
        WHERE account_id = p_account AND state IN ('active', 'spending');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

-- "This wasn't me": when the token whose deny secret hashes to p_deny is
-- live (read under the account's lock), revokes every live token of the
-- account (user_denied). known = false: no such deny secret.
CREATE FUNCTION __SCHEMA__.deny_token(p_deny bytea, p_at timestamptz,
    OUT known boolean, OUT state text, OUT revoke_reason text, OUT revoked bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    acct text;
BEGIN
    known := false;
    revoked := 0;
    SELECT t.account_id INTO acct FROM __SCHEMA__.tokens t WHERE t.deny_hash = p_deny;
    IF acct IS NULL THEN
        RETURN;
    END IF;
    PERFORM __SCHEMA__.lock_account(acct);
    SELECT t.state, t.revoke_reason INTO state, revoke_reason
        FROM __SCHEMA__.tokens t WHERE t.deny_hash = p_deny;
    known := true;
    IF state IN ('active', 'spending') THEN
        UPDATE __SCHEMA__.tokens t SET state = 'revoked', state_at = p_at, revoke_reason = 'user_denied'
            WHERE t.account_id = acct AND t.state IN ('active', 'spending');
        GET DIAGNOSTICS revoked = ROW_COUNT;
    END IF;
END
$fn$;
