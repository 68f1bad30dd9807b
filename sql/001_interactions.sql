-- 001: schema crm, its version, and every captured interaction.
--
-- The module writes events in batches: one call of crm.record_events() with
-- the batch as newline-separated JSON lines, exactly as they stand in the
-- worker's spool file.  The event id is made by the module, so a batch that
-- is replayed after a partial write inserts nothing twice.

CREATE SCHEMA IF NOT EXISTS crm;

CREATE TABLE IF NOT EXISTS crm.schema_version (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE crm.schema_version IS
    'Migrations of sql/ applied to this database, one row each.';

CREATE TABLE crm.event (
    event_id     uuid PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL
                 CHECK (kind IN ('order', 'payment', 'status', 'feedback',
                                 'banner')),
    customer_id  bigint,
    order_id     text,
    payload      jsonb,
    body         bytea,
    state        text NOT NULL,
    reason       text,
    node         text
);

CREATE INDEX event_received_at ON crm.event (received_at);
CREATE INDEX event_order_id ON crm.event (order_id)
    WHERE order_id IS NOT NULL;
CREATE INDEX event_customer_id ON crm.event (customer_id)
    WHERE customer_id IS NOT NULL;

COMMENT ON TABLE crm.event IS
    'The module''s record of captured requests; staff read crm.interactions.';

-- The slow path: when PostgreSQL refuses a batch, the module sends it again
-- here; each line is tried on its own and a line that cannot be read is
-- kept in crm.spool_reject instead of blocking the lines after it.
CREATE TABLE crm.spool_reject (
    reject_id    bigserial PRIMARY KEY,
    rejected_at  timestamptz NOT NULL DEFAULT now(),
    line         text NOT NULL,
    error        text NOT NULL
);

COMMENT ON TABLE crm.spool_reject IS
    'Spooled event lines PostgreSQL could not read, with the error; '
    'nothing the module captured is dropped silently.';
