-- Schema version 2: the nodes sharing the database (issue 9). Each node upserts its row with a
-- heartbeat; a row whose heartbeat is older than the nodes' `node_gone_after` is a node gone.
-- `leader` is the node's own word that it holds the leadership lock, as of its last heartbeat.
CREATE TABLE tagcast_nodes (
    node_id text PRIMARY KEY,
    started_ms bigint NOT NULL,
    heartbeat_ms bigint NOT NULL,
    leader boolean NOT NULL
);
