-- The request inbox: `request` inserts, workers (in any process) claim with
-- FOR UPDATE SKIP LOCKED, process, and delete. While a row is claimed,
-- `due_at` holds the end of its lease, so one index serves new, retried and
-- abandoned (lease ran out) rows alike.
--
-- SENSITIVE: `identifier` is what the user typed (canonicalised) until the
-- request is processed; the row is deleted then.
CREATE TABLE __SCHEMA__.request_inbox (
    id              text        PRIMARY KEY,
    seq             bigserial   NOT NULL,
    identifier_kind text        NOT NULL CHECK (identifier_kind IN ('email', 'username')),
    identifier      text        NOT NULL,
    client          text,
    locale          text,
    received_at     timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    claimed         boolean     NOT NULL DEFAULT false,
    attempts        integer     NOT NULL DEFAULT 0
);
CREATE INDEX request_inbox_due ON __SCHEMA__.request_inbox (due_at, seq);

-- Retention purges walk these instead of scanning.
CREATE INDEX events_at ON __SCHEMA__.events (at);
CREATE INDEX outbox_finished ON __SCHEMA__.outbox (finished_at)
    WHERE status IN ('sent', 'failed', 'dropped');
CREATE INDEX rate_hits_at ON __SCHEMA__.rate_hits (at);
