-- Combined steps (issue 22): one statement for each step of processing a
-- request that writes to several tables, so a known request is processed in
-- two round trips (look the accounts up; issue the token with its events,
-- its mail and the inbox request's deletion) and an unknown one in one.
-- The core composes the same steps from the primitives for other stores
-- (`resetkit::store::steps`); what is written when a step succeeds is the
-- same. Each function runs in the caller's statement: all or nothing.

-- The events of one step and their per-minute and per-hour counts (as
-- `PgEventLog::record_all`, which computes the counts).
CREATE FUNCTION __SCHEMA__.record_events(
    p_at timestamptz[], p_account text[], p_kind text[], p_detail text[],
    p_m_start timestamptz[], p_m_activity text[], p_m_n bigint[],
    p_h_start timestamptz[], p_h_activity text[], p_h_n bigint[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    INSERT INTO __SCHEMA__.activity_minutes AS c (start, activity, shard, n)
        SELECT start, activity, (pg_backend_pid() % 8)::smallint, n
        FROM unnest(p_m_start, p_m_activity, p_m_n) AS r(start, activity, n)
        ON CONFLICT (start, activity, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    INSERT INTO __SCHEMA__.activity_hours AS c (start, activity, shard, n)
        SELECT start, activity, (pg_backend_pid() % 8)::smallint, n
        FROM unnest(p_h_start, p_h_activity, p_h_n) AS r(start, activity, n)
        ON CONFLICT (start, activity, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    INSERT INTO __SCHEMA__.events (at, account_id, kind, detail)
        SELECT at, account_id, kind, detail::jsonb
        FROM unnest(p_at, p_account, p_kind, p_detail)
            WITH ORDINALITY AS e(at, account_id, kind, detail, n)
        ORDER BY n;
END
$fn$;

-- `RequestInbox::settle`: the step's last events, then the request done
-- (fenced by its attempt, as `done`).
CREATE FUNCTION __SCHEMA__.settle_request(
    p_id text, p_attempt integer,
    p_at timestamptz[], p_account text[], p_kind text[], p_detail text[],
    p_m_start timestamptz[], p_m_activity text[], p_m_n bigint[],
    p_h_start timestamptz[], p_h_activity text[], p_h_n bigint[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM __SCHEMA__.record_events(p_at, p_account, p_kind, p_detail,
        p_m_start, p_m_activity, p_m_n, p_h_start, p_h_activity, p_h_n);
    DELETE FROM __SCHEMA__.request_inbox WHERE id = p_id AND claimed AND attempts = p_attempt;
    RETURN 1;
END
$fn$;

-- `TokenStore::issue_and_record`: `issue_token`, then, if the token was
-- issued, the events (the `links_revoked` placeholder at p_superseded_at,
-- 1-based, gets the count of superseded tokens or is left out when there is
-- none), the mail (when p_message_id is not NULL) and the inbox request's
-- deletion (when p_settle_id is not NULL). Returns what `issue_token` does:
-- -1 when the limit refused the token (then nothing is written), else how
-- many older tokens were revoked.
CREATE FUNCTION __SCHEMA__.issue_and_record(
    p_hash bytea, p_account_id text, p_sent_to text, p_stamp text,
    p_issued timestamptz, p_expires timestamptz, p_deny bytea,
    p_window_start timestamptz, p_max bigint, p_supersede boolean,
    p_superseded_at integer,
    p_at timestamptz[], p_account text[], p_kind text[], p_detail text[],
    p_m_start timestamptz[], p_m_activity text[], p_m_n bigint[],
    p_h_start timestamptz[], p_h_activity text[], p_h_n bigint[],
    p_message_id text, p_mail_account text, p_mail_kind text, p_from_name text, p_from_address text,
    p_reply_to_name text, p_reply_to_address text, p_to_name text, p_to_address text,
    p_subject text, p_body_text text, p_body_html text, p_attempts integer,
    p_next_attempt timestamptz, p_token_hashes bytea[], p_requested_at timestamptz,
    p_settle_id text, p_settle_attempt integer)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    revoked bigint;
    i integer := p_superseded_at;
BEGIN
    revoked := __SCHEMA__.issue_token(p_hash, p_account_id, p_sent_to, p_stamp, p_issued,
        p_expires, p_deny, p_window_start, p_max, p_supersede);
    IF revoked < 0 THEN
        RETURN revoked;
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
    IF p_settle_id IS NOT NULL THEN
        DELETE FROM __SCHEMA__.request_inbox
            WHERE id = p_settle_id AND claimed AND attempts = p_settle_attempt;
    END IF;
    RETURN revoked;
END
$fn$;
