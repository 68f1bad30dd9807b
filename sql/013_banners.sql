-- 013: banners.  The module keeps each customer's banner state in shared
-- memory, filled from crm.banner_state(); a birthday banner's gift is
-- promised once per person and year, recorded here.

CREATE TABLE crm.birthday_gift (
    customer_id  bigint NOT NULL REFERENCES crm.customer,
    person       bigint NOT NULL,
    year         integer NOT NULL,
    promise_id   bigint REFERENCES crm.promise,
    given_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, person, year)
);

COMMENT ON TABLE crm.birthday_gift IS
    'The birthday gifts promised: one per customer, person and year, '
    'whatever the views, nodes or edits of the birthday.';
COMMENT ON COLUMN crm.birthday_gift.person IS
    '0 for the customer''s own birthday, else the crm.relative id.';
COMMENT ON COLUMN crm.birthday_gift.year IS
    'The year of the birthday the gift was for.';

CREATE INDEX event_banner_customer ON crm.event (customer_id, received_at)
    WHERE kind = 'banner';
