-- Schema version 3: change-log entries also carry the events every node must learn (tasks
-- created and revoked, logins; kinds 16 to 18 of the entry encoding). No table changes, but a
-- node of version 2 would not understand such entries, so the version says it.
COMMENT ON COLUMN change_log.changes IS
    'audience changes (kinds 0-6) then events (kinds 16-18), see tagcast-store codec.rs';
