-- feedback on an assistant reply (POST /api/chat/message/{id}/score)
ALTER TABLE messages ADD COLUMN score REAL;
ALTER TABLE messages ADD COLUMN score_comment TEXT;
ALTER TABLE messages ADD COLUMN scored_at TEXT;
