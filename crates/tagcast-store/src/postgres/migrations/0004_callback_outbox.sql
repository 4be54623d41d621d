-- Schema version 4: callback batches waiting to be sent, written in the transaction that records
-- their deliveries, so that none is lost with a node; the leader sends and retries them, and
-- removes each once the app took it (or every attempt failed).
CREATE TABLE callback_outbox (
    app bigint NOT NULL,
    id bigint NOT NULL,
    body text NOT NULL,
    attempts integer NOT NULL,
    next_attempt_ms bigint NOT NULL,
    PRIMARY KEY (app, id)
);
CREATE INDEX callback_outbox_due ON callback_outbox (next_attempt_ms);
