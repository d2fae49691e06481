-- The end of `complete` in one statement (issue 22): the statement that
-- calls `finish_reset` first writes the new password to the users table
-- (the host's or resetkit's own, mapped by configuration: that part is
-- built by `PgAccounts`) and passes whether a row was written. Then, here:
-- `finish_token`, and once the token is finished the step's events (the
-- `links_revoked` placeholder at p_revoked_at, 1-based, gets the count of
-- revoked links or is left out when there is none) and the "password
-- changed" notice queued (when p_message_id is not NULL). The core
-- composes the same step from the primitives for other stores
-- (`TokenStore::finish_reset`); what is written when it succeeds is the
-- same. A token revoked meanwhile (or gone) writes no events and no mail:
-- the caller records what happened.

CREATE FUNCTION __SCHEMA__.finish_reset(
    p_written boolean, p_hash bytea, p_now timestamptz, p_revoked_at integer,
    p_at timestamptz[], p_account text[], p_kind text[], p_detail text[],
    p_m_start timestamptz[], p_m_activity text[], p_m_n bigint[],
    p_h_start timestamptz[], p_h_activity text[], p_h_n bigint[],
    p_message_id text, p_mail_account text, p_mail_kind text, p_from_name text, p_from_address text,
    p_reply_to_name text, p_reply_to_address text, p_to_name text, p_to_address text,
    p_subject text, p_body_text text, p_body_html text, p_attempts integer,
    p_next_attempt timestamptz, p_token_hashes bytea[], p_requested_at timestamptz,
    OUT written boolean, OUT finished boolean, OUT revoked bigint, OUT state text,
    OUT revoke_reason text)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    i integer := p_revoked_at;
BEGIN
    written := p_written;
    finished := false;
    revoked := 0;
    IF NOT p_written THEN
        RETURN;
    END IF;
    SELECT f.finished, f.revoked, f.state, f.revoke_reason
        INTO finished, revoked, state, revoke_reason
        FROM __SCHEMA__.finish_token(p_hash, p_now) f;
    IF NOT finished THEN
        RETURN;
    END IF;
    IF i IS NOT NULL AND i BETWEEN 1 AND coalesce(array_length(p_kind, 1), 0)
            AND p_kind[i] = 'links_revoked' THEN
        IF revoked > 0 THEN
            p_detail[i] := jsonb_set(p_detail[i]::jsonb, '{count}', to_jsonb(revoked))::text;
        ELSE
            p_at := p_at[1:i - 1] || p_at[i + 1:];
            p_account := p_account[1:i - 1] || p_account[i + 1:];
            p_kind := p_kind[1:i - 1] || p_kind[i + 1:];
            p_detail := p_detail[1:i - 1] || p_detail[i + 1:];
        END IF;
    END IF;
    PERFORM __SCHEMA__.record_events(p_at, p_account, p_kind, p_detail,
        p_m_start, p_m_activity, p_m_n, p_h_start, p_h_activity, p_h_n);
    IF p_message_id IS NOT NULL THEN
        INSERT INTO __SCHEMA__.outbox (message_id, account_id, kind, from_name, from_address,
            reply_to_name, reply_to_address, to_name, to_address, subject, body_text, body_html,
            attempts, next_attempt_at, token_hashes, requested_at)
        VALUES (p_message_id, p_mail_account, p_mail_kind, p_from_name, p_from_address,
            p_reply_to_name, p_reply_to_address, p_to_name, p_to_address, p_subject, p_body_text,
            p_body_html, p_attempts, coalesce(p_next_attempt, now()), p_token_hashes, p_requested_at);
    END IF;
END
$fn$;
