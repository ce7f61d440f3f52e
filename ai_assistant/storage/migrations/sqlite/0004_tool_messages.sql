-- tool messages, and the tool calls of an assistant reply (a JSON list of
-- {"id", "name", "args"}): SQLite cannot change a CHECK, so the table is rebuilt
CREATE TABLE messages_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content TEXT NOT NULL,
    model_id TEXT,
    status TEXT NOT NULL
        CHECK (status IN ('complete', 'streaming', 'interrupted', 'failed')),
    error TEXT,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    latency_ms INTEGER,
    first_token_ms INTEGER,
    input_tokens INTEGER,
    output_tokens INTEGER,
    writer TEXT,
    tool_calls TEXT,
    tool_call_id TEXT
);
INSERT INTO messages_new (id, conversation_id, role, content, model_id, status, error,
    created_at, completed_at, latency_ms, first_token_ms, input_tokens, output_tokens,
    writer)
    SELECT id, conversation_id, role, content, model_id, status, error, created_at,
        completed_at, latency_ms, first_token_ms, input_tokens, output_tokens, writer
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE INDEX messages_streaming ON messages (writer) WHERE status = 'streaming';
