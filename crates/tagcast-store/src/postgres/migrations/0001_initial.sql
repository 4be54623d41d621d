-- tagcast's records in PostgreSQL, schema version 1. Every key starts with the app (sdkappid),
-- so no lookup crosses from one app into another. Unsigned ids are stored bit for bit in the
-- signed column of the same width.

-- Per app: the next account and tag ids to hand out, and the number of distinct tags in use.
CREATE TABLE apps (
    app bigint PRIMARY KEY,
    next_account integer NOT NULL,
    next_tag integer NOT NULL,
    live_tags integer NOT NULL
);

-- Accounts with their dense per-app ids, never reused within an app.
CREATE TABLE accounts (
    app bigint NOT NULL,
    id integer NOT NULL,
    name text NOT NULL,
    PRIMARY KEY (app, id),
    UNIQUE (app, name)
);

-- An account's tag ids, in the order they were added (no row: no tags), as consecutive
-- little-endian 4-byte ids: a bytea costs PostgreSQL next to nothing to send, where arrays are
-- most of an index rebuild's time.
CREATE TABLE account_tags (
    app bigint NOT NULL,
    id integer NOT NULL,
    tag_ids bytea NOT NULL,
    PRIMARY KEY (app, id)
);

-- An account's attribute values (no row: no attributes), in slot order, each as the slot
-- (1 byte), the value's length in bytes (2 bytes, little-endian) and the UTF-8 value.
CREATE TABLE account_attrs (
    app bigint NOT NULL,
    id integer NOT NULL,
    attrs bytea NOT NULL,
    PRIMARY KEY (app, id)
);

-- Tags in use, with how many accounts have each.
CREATE TABLE tags (
    app bigint NOT NULL,
    id integer NOT NULL,
    name text NOT NULL,
    accounts integer NOT NULL,
    PRIMARY KEY (app, id),
    UNIQUE (app, name)
);

-- Each app's named attribute slots (0-9); account_type 0 = UserID, 1 = RegistrationID.
CREATE TABLE attr_names (
    app bigint NOT NULL,
    slot smallint NOT NULL,
    name text NOT NULL,
    account_type smallint NOT NULL,
    PRIMARY KEY (app, slot)
);

-- Per app: the next task sequence number and the day's count of pushes against the quota.
CREATE TABLE push_state (
    app bigint PRIMARY KEY,
    next_seq bigint NOT NULL,
    day integer NOT NULL,
    today integer NOT NULL,
    last_ms bigint NOT NULL
);

-- Push tasks, each stored once; meta is the task as tagcast serializes it.
CREATE TABLE tasks (
    app bigint NOT NULL,
    seq bigint NOT NULL,
    created_ms bigint NOT NULL,
    expires_ms bigint NOT NULL,
    revoked_ms bigint,
    meta jsonb NOT NULL,
    PRIMARY KEY (app, seq)
);
CREATE INDEX tasks_live ON tasks (expires_ms) WHERE revoked_ms IS NULL;

-- The frozen audience of each task: a roaring bitmap of account ids (portable format).
CREATE TABLE task_audiences (
    app bigint NOT NULL,
    seq bigint NOT NULL,
    audience bytea NOT NULL,
    PRIMARY KEY (app, seq)
);

-- The MsgRandom idempotency window: the task each MsgRandom last made.
CREATE TABLE msg_randoms (
    app bigint NOT NULL,
    msg_random bigint NOT NULL,
    seq bigint NOT NULL,
    created_ms bigint NOT NULL,
    PRIMARY KEY (app, msg_random)
);

-- Accounts a task reached during one unix second (roaring bitmap).
CREATE TABLE task_deliveries (
    app bigint NOT NULL,
    seq bigint NOT NULL,
    second bigint NOT NULL,
    accounts bytea NOT NULL,
    PRIMARY KEY (app, seq, second)
);

-- Per account: the sequence number of the last task delivered to it.
CREATE TABLE cursors (
    app bigint NOT NULL,
    account integer NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (app, account)
);

-- The ordered change log of each app's audience: one entry per committed transaction that
-- changed the app's accounts, tags or attributes. Positions are taken from change_log_heads in
-- the writing transaction, whose row lock makes commit order equal log order.
CREATE TABLE change_log_heads (
    app bigint PRIMARY KEY,
    position bigint NOT NULL
);
CREATE TABLE change_log (
    app bigint NOT NULL,
    position bigint NOT NULL,
    committed_ms bigint NOT NULL,
    changes bytea NOT NULL,
    PRIMARY KEY (app, position)
);
