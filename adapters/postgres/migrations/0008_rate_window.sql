-- Rate limits count every hit after the window's start, also one stamped a
-- moment after the caller's own time: concurrent requests stamp their time
-- before they take the key's lock, so one stamped earlier can arrive after
-- one stamped later. Counting only hits up to the caller's time let 16
-- clients flooding one address through (21 of 20 per client, 4 of 3 per
-- account). Same functions as migrations 2 and 3 otherwise.
CREATE OR REPLACE FUNCTION __SCHEMA__.rate_admit(p_key text, p_at timestamptz, p_window_start timestamptz, p_max bigint)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('resetkit.rate_hit:' || p_key, 0));
    DELETE FROM __SCHEMA__.rate_hits WHERE key = p_key AND at <= p_window_start;
    SELECT count(*) INTO n FROM __SCHEMA__.rate_hits
        WHERE key = p_key AND at > p_window_start;
    IF n >= p_max THEN
        RETURN false;
    END IF;
    INSERT INTO __SCHEMA__.rate_hits (key, at) VALUES (p_key, p_at);
    RETURN true;
END
$fn$;

CREATE OR REPLACE FUNCTION __SCHEMA__.issue_token(
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
            WHERE key = k AND at > p_window_start;
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
