-- resetkit schema, version 1. `__SCHEMA__` is replaced by the configured,
-- validated and quoted schema name before this runs.
--
-- SENSITIVE: `outbox` holds email bodies with live reset links until they are
-- sent (bodies are blanked once sent or given up); protect it like `tokens`
-- and like the host's password hashes (no broad read grants, no plain dumps).

CREATE TABLE __SCHEMA__.tokens (
    hash            bytea       PRIMARY KEY CHECK (octet_length(hash) = 32), -- SHA-256 of the raw token
    account_id      text        NOT NULL,
    sent_to         text        NOT NULL,  -- canonical address the link went to
    password_stamp  text        NOT NULL,
    issued_at       timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    state           text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'used', 'revoked')),
    state_at        timestamptz,
    revoke_reason   text
);
CREATE INDEX tokens_account_active ON __SCHEMA__.tokens (account_id) WHERE state = 'active';
CREATE INDEX tokens_expires_at ON __SCHEMA__.tokens (expires_at);

CREATE TABLE __SCHEMA__.rate_hits (
    id   bigserial   PRIMARY KEY,
    key  text        NOT NULL,
    at   timestamptz NOT NULL
);
CREATE INDEX rate_hits_key_at ON __SCHEMA__.rate_hits (key, at);

-- Records one hit and counts the key's hits in (window_start, at]. Hits of one
-- key are serialised by a transaction-scoped advisory lock; each statement of
-- a VOLATILE plpgsql function takes a fresh snapshot, so the count includes
-- every hit committed before the lock was granted: exact across instances.
CREATE FUNCTION __SCHEMA__.rate_hit(p_key text, p_at timestamptz, p_window_start timestamptz)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('resetkit.rate_hit:' || p_key, 0));
    DELETE FROM __SCHEMA__.rate_hits WHERE key = p_key AND at <= p_window_start;
    INSERT INTO __SCHEMA__.rate_hits (key, at) VALUES (p_key, p_at);
    SELECT count(*) INTO n FROM __SCHEMA__.rate_hits
        WHERE key = p_key AND at > p_window_start AND at <= p_at;
    RETURN n;
END
$fn$;

CREATE TABLE __SCHEMA__.events (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL,
    account_id  text,
    kind        text        NOT NULL,
    detail      jsonb       NOT NULL
);
CREATE INDEX events_account ON __SCHEMA__.events (account_id, id);

CREATE TABLE __SCHEMA__.outbox (
    message_id       text        PRIMARY KEY,
    seq              bigserial   NOT NULL,
    account_id       text,
    kind             text        NOT NULL,
    from_name        text,
    from_address     text        NOT NULL,
    reply_to_name    text,
    reply_to_address text,
    to_name          text,
    to_address       text        NOT NULL,
    subject          text        NOT NULL,
    body_text        text        NOT NULL,  -- live link until sent
    body_html        text        NOT NULL,  -- live link until sent
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'claimed', 'sent', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX outbox_pending_due ON __SCHEMA__.outbox (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX outbox_claimed_lease ON __SCHEMA__.outbox (lease_until) WHERE status = 'claimed';

-- resetkit:own-accounts {
-- Accounts for applications without a users table of their own. Apps with
-- one map resetkit onto it instead (see `UsersTable`).
CREATE TABLE __SCHEMA__.accounts (
    id                 text    PRIMARY KEY,
    username           text    NOT NULL,
    email              text,
    email_confirmed    boolean NOT NULL DEFAULT true,
    disabled           boolean NOT NULL DEFAULT false,
    owner              text,
    password_hash      text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_username_lower ON __SCHEMA__.accounts (lower(username));
CREATE INDEX accounts_email_lower ON __SCHEMA__.accounts (lower(email));
-- resetkit:own-accounts }
