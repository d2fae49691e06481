-- The operator console (issue 16).
--
-- * `email_templates`: operator-edited email templates, every saved
--   version kept; at most one active per (locale, kind). Saves and restores
--   run in a transaction holding an advisory lock per (locale, kind).
-- * The console lists failed / dropped outbox messages newest first, and
--   an account's events newest first (the latter uses `events_account`,
--   (account_id, id), read backwards).

CREATE TABLE __SCHEMA__.email_templates (
    locale     text        NOT NULL,
    kind       text        NOT NULL,
    version    integer     NOT NULL CHECK (version > 0),
    subject    text        NOT NULL,
    body_text  text        NOT NULL,
    body_html  text        NOT NULL,
    saved_at   timestamptz NOT NULL,
    saved_by   text        NOT NULL,
    active     boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (locale, kind, version)
);
CREATE UNIQUE INDEX email_templates_active ON __SCHEMA__.email_templates (locale, kind) WHERE active;

CREATE INDEX outbox_failed_dropped ON __SCHEMA__.outbox (finished_at DESC, seq DESC)
    WHERE status IN ('failed', 'dropped');
