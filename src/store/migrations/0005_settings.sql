-- deployment settings written once and shared by every node (the generated repeat-incident salt)
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL, created_at BIGINT NOT NULL)
