-- A referral's message keeps its bundle naming the resource versions its transaction stored, not a second
-- copy of each (store::carried); 1 marks such a body, 0 (every message before) a body kept whole.
ALTER TABLE messages ADD COLUMN names_versions BIGINT NOT NULL DEFAULT 0
