-- one source of truth: referral revisions, the audit chain and its head, disclosures, consent and legal
-- basis versions, durable jobs with their uploads, resource history
CREATE TABLE referral_messages (id TEXT PRIMARY KEY, source TEXT NOT NULL, referral_key TEXT NOT NULL,
  revision BIGINT NOT NULL, content_hash TEXT NOT NULL, received_at BIGINT NOT NULL, body TEXT NOT NULL,
  UNIQUE (referral_key, revision));
INSERT INTO referral_messages (id, source, referral_key, revision, content_hash, received_at, body)
  SELECT id, source, source || ':' || source_key, 1, '', received_at, body FROM messages;
DROP TABLE messages;
ALTER TABLE referral_messages RENAME TO messages;
CREATE INDEX messages_referral ON messages (referral_key);
CREATE INDEX outbox_destination ON outbox (destination, status);
CREATE TABLE audit_entries (seq BIGINT PRIMARY KEY, hash TEXT NOT NULL, entry TEXT NOT NULL);
CREATE TABLE audit_head (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, updated_at BIGINT NOT NULL);
INSERT INTO audit_head (id, seq, hash, updated_at) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0);
CREATE TABLE disclosures (id TEXT PRIMARY KEY, outbox_id TEXT, recorded_at BIGINT NOT NULL, body TEXT NOT NULL);
CREATE TABLE disclosure_keys (disclosure_id TEXT NOT NULL, person_key TEXT NOT NULL, PRIMARY KEY (disclosure_id, person_key));
CREATE INDEX disclosure_keys_person ON disclosure_keys (person_key);
CREATE TABLE state_versions (name TEXT PRIMARY KEY, version BIGINT NOT NULL);
INSERT INTO state_versions (name, version) VALUES ('consents', 1);
INSERT INTO state_versions (name, version) VALUES ('bases', 1);
CREATE TABLE legal_bases (position BIGINT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE resource_versions (resource_type TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, body TEXT NOT NULL,
  updated_at BIGINT NOT NULL, PRIMARY KEY (resource_type, id, version));
ALTER TABLE jobs ADD COLUMN upload_name TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN upload_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN org TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN records_done BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN accepted BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN updated BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN duplicates BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN refused TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN resumed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_claim ON jobs (status, claimed_until);
CREATE TABLE job_uploads (job_id TEXT NOT NULL, chunk BIGINT NOT NULL, data {blob} NOT NULL, PRIMARY KEY (job_id, chunk))
