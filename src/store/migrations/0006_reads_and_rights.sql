-- reads through the gate: which resources each message carries; jobs belong to the partner that posted them
CREATE TABLE message_resources (message_id TEXT NOT NULL, resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,
  PRIMARY KEY (message_id, resource_type, resource_id));
CREATE INDEX message_resources_resource ON message_resources (resource_type, resource_id);
ALTER TABLE jobs ADD COLUMN partner TEXT NOT NULL DEFAULT ''
