-- Schema version 6: pushes' fan-outs to devices (issue 10). A fan-out row is written with its
-- task and advanced by the leader batch by batch; each account's sends record what the
-- providers answered, with the due time of a retry while one is waiting.
CREATE TABLE dispatches (
    app bigint NOT NULL,
    seq bigint NOT NULL,
    finished boolean NOT NULL,
    dispatch text NOT NULL,
    PRIMARY KEY (app, seq)
);
CREATE INDEX dispatches_open ON dispatches (app, seq) WHERE NOT finished;
CREATE TABLE device_sends (
    app bigint NOT NULL,
    seq bigint NOT NULL,
    account integer NOT NULL,
    sends text NOT NULL,
    next_attempt_ms bigint,
    PRIMARY KEY (app, seq, account)
);
CREATE INDEX device_sends_due ON device_sends (next_attempt_ms) WHERE next_attempt_ms IS NOT NULL;
