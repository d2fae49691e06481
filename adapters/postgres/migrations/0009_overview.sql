-- The operator's overview and the metrics (issue 24).
--
-- * `activity_minutes`, `activity_hours`: how many events of each overview
--   kind (the core's `resetkit::activity::Activity` names) were recorded per
--   minute and per hour. The event log writes both in the same statement as
--   the events. `shard` (the writing backend's pid modulo 8) spreads
--   concurrent writers over rows, so they do not queue on one row lock;
--   readers sum the shards. The overview reads 60 minutes and 24 hours from
--   the primary keys' ranges: at most 16 kinds x 8 shards per period,
--   whatever the number of events.
-- * `events_deliveries`: the newest delivery results (sent, failed, the
--   server's reply), read backwards for each sender's last result.
-- * `outbox.requested_at`: when the request behind a message was accepted
--   (request-to-delivery time); an index finds the oldest waiting message.

CREATE TABLE __SCHEMA__.activity_minutes (
    start     timestamptz NOT NULL,
    activity  text        NOT NULL,
    shard     smallint    NOT NULL,
    n         bigint      NOT NULL,
    PRIMARY KEY (start, activity, shard)
);
CREATE TABLE __SCHEMA__.activity_hours (
    start     timestamptz NOT NULL,
    activity  text        NOT NULL,
    shard     smallint    NOT NULL,
    n         bigint      NOT NULL,
    PRIMARY KEY (start, activity, shard)
);

CREATE INDEX events_deliveries ON __SCHEMA__.events (id DESC)
    WHERE kind IN ('email_sent', 'delivery_failed', 'server_replied');

ALTER TABLE __SCHEMA__.outbox ADD COLUMN requested_at timestamptz;
CREATE INDEX outbox_waiting_created ON __SCHEMA__.outbox (created_at)
    WHERE status IN ('pending', 'claimed');
