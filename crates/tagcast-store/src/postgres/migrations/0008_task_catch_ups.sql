-- Schema version 8: the accounts each task reached from their backlog when they connected
-- (roaring bitmap), a subset of its deliveries: the console's funnel tells them from those
-- reached online when it was sent (issue 11).
CREATE TABLE task_catch_ups (
    app bigint NOT NULL,
    seq bigint NOT NULL,
    accounts bytea NOT NULL,
    PRIMARY KEY (app, seq)
);
