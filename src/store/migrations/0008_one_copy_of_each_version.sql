-- A resource's current version is its row in `resources`; `resource_versions` keeps the versions a later one
-- superseded (copied there by the update that supersedes them). The copies of current versions go.
DELETE FROM resource_versions WHERE EXISTS (SELECT 1 FROM resources r WHERE r.resource_type = resource_versions.resource_type
  AND r.id = resource_versions.id AND r.version = resource_versions.version);
-- The resources each message carries, keyed by the resource (what reads look them up by): one b-tree on
-- SQLite instead of a table, its key and an index on the resource.
CREATE TABLE message_resources_by_resource (resource_type TEXT NOT NULL, resource_id TEXT NOT NULL, message_id TEXT NOT NULL,
  PRIMARY KEY (resource_type, resource_id, message_id)){without_rowid};
INSERT INTO message_resources_by_resource (resource_type, resource_id, message_id)
  SELECT resource_type, resource_id, message_id FROM message_resources;
DROP TABLE message_resources;
ALTER TABLE message_resources_by_resource RENAME TO message_resources;
-- Messages by referral: the unique key on (referral_key, revision) already serves every lookup.
DROP INDEX messages_referral
