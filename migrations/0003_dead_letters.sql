-- Events the broker can never take (oversized, unroutable, a destination
-- that cannot be rendered or is forbidden), with why, how often they were
-- tried and the outbox row as it was, so `outbox-relay dead-letters retry`
-- can put them back in the stream.
CREATE TABLE IF NOT EXISTS {{dead_letters}} (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    event_type text NOT NULL,
    payload bytea NOT NULL,
    headers jsonb,
    reason text NOT NULL,
    error text NOT NULL,
    attempts integer NOT NULL,
    sink text NOT NULL,
    event_created_at timestamptz,
    failed_at timestamptz NOT NULL DEFAULT now(),
    row_data json,
    retried_at timestamptz
);

-- One pending letter per event: a relay that dies between recording and
-- marking adds its attempts to the same row.
CREATE UNIQUE INDEX IF NOT EXISTS {{dead_letters_pending_index}} ON {{dead_letters}} (event_id)
    WHERE retried_at IS NULL;
