-- the processes writing replies (see the module docstring): pid and host are for people,
-- liveness comes from each writer's lock file
CREATE TABLE writers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL
);
ALTER TABLE messages ADD COLUMN writer TEXT;
CREATE INDEX messages_streaming ON messages (writer) WHERE status = 'streaming';
-- replies left streaming before writers were recorded: their processes cannot be told
-- apart, and in practice they were killed (a live one's final status still overwrites)
UPDATE messages SET status = 'interrupted', error = 'the process ended',
    completed_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
    WHERE status = 'streaming';
