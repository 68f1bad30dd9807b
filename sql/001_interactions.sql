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

-- record_events: inserts a batch of events, one JSON object per line;
-- returns how many were new.
CREATE FUNCTION crm.record_events(batch text) RETURNS integer
LANGUAGE sql AS $$
    WITH ins AS (
        INSERT INTO crm.event (event_id, received_at, kind, customer_id,
                               order_id, payload, body, state, reason, node)
        SELECT e.event_id, to_timestamp(e.received_at), e.kind,
               e.customer_id, e.order_id, e.payload,
               decode(e.body, 'base64'), e.state, e.reason, e.node
          FROM string_to_table(batch, E'\n') AS l,
               -- one parse a line
               jsonb_to_record(l::jsonb) AS e(event_id uuid,
                   received_at double precision, kind text,
                   customer_id bigint, order_id text, payload jsonb,
                   body text, state text, reason text, node text)
         WHERE l <> ''
        ON CONFLICT (event_id) DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer FROM ins
$$;

COMMENT ON FUNCTION crm.record_events(text) IS
    'Called by the module: writes a batch of spooled events, idempotently.';

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

CREATE FUNCTION crm.record_events_slow(batch text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    l  text;
    n  integer := 0;
BEGIN
    FOR l IN SELECT x FROM string_to_table(batch, E'\n') AS x WHERE x <> ''
    LOOP
        BEGIN
            n := n + crm.record_events(l);
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO crm.spool_reject (line, error) VALUES (l, SQLERRM);
        END;
    END LOOP;
    RETURN n;
END
$$;

COMMENT ON FUNCTION crm.record_events_slow(text) IS
    'Called by the module when a batch fails: writes it line by line.';

CREATE VIEW crm.interactions AS
    SELECT event_id, received_at, kind, customer_id, order_id,
           coalesce(payload,
                    CASE WHEN body IS NOT NULL
                         THEN jsonb_build_object('raw_base64',
                                                 encode(body, 'base64'))
                    END) AS payload,
           state, reason
      FROM crm.event;

COMMENT ON VIEW crm.interactions IS
    'Every request a crm_capture location saw, once, as the shop sent it.';
COMMENT ON COLUMN crm.interactions.event_id IS
    'Unique id the module gave the event when it arrived.';
COMMENT ON COLUMN crm.interactions.received_at IS
    'When nginx received the request.';
COMMENT ON COLUMN crm.interactions.kind IS
    'order, payment, status, feedback or banner.';
COMMENT ON COLUMN crm.interactions.customer_id IS
    'The customer the event belongs to, when known.';
COMMENT ON COLUMN crm.interactions.order_id IS
    'The order id the body carried (policy fields.order_id).';
COMMENT ON COLUMN crm.interactions.payload IS
    'The body as JSON; a form body becomes an object of its fields; a body '
    'that was not valid JSON or form is kept as {"raw_base64": ...}; '
    'NULL when it was too large to read.';
COMMENT ON COLUMN crm.interactions.state IS
    'ok, no_customer, bad_body or db_unavailable: what the module decided.';
COMMENT ON COLUMN crm.interactions.reason IS
    'Why the state is not ok, e.g. the JSON error of a bad body.';
