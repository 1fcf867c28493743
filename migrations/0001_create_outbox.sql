-- The outbox table and the index that keeps claims cheap.
-- {{placeholders}} are filled in by `outbox-relay migrate` from the [outbox]
-- configuration (quoted identifiers), so the table gets the configured names.
CREATE SCHEMA IF NOT EXISTS {{schema}};

CREATE TABLE IF NOT EXISTS {{table}} (
    {{id}} bigserial PRIMARY KEY,
    {{aggregate_type}} text NOT NULL,
    {{aggregate_id}} text NOT NULL,
    {{event_type}} text NOT NULL,
    {{payload}} jsonb NOT NULL,
    {{headers}} jsonb,
    {{created_at}} timestamptz NOT NULL DEFAULT now(),
    {{sent_at}} timestamptz
);

-- Claims read unsent rows in order; sent rows drop out of the index.
CREATE INDEX IF NOT EXISTS {{unsent_index}} ON {{table}} ({{order_columns}})
    WHERE {{sent_at}} IS NULL;
