-- who a conversation belongs to: the gateway's API key name (NULL from the CLI)
ALTER TABLE conversations ADD COLUMN owner TEXT;
CREATE INDEX conversations_by_owner ON conversations (owner, updated_at);
