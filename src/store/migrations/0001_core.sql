-- messages, outbox, resources, jobs, partners
CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, source TEXT NOT NULL, source_key TEXT NOT NULL,
  received_at BIGINT NOT NULL, body TEXT NOT NULL, UNIQUE (source, source_key));
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, message_id TEXT NOT NULL, kind TEXT NOT NULL, destination TEXT NOT NULL,
  status TEXT NOT NULL, attempts BIGINT NOT NULL, next_attempt_at BIGINT NOT NULL, claimed_until BIGINT NOT NULL,
  last_error TEXT, delivered_at BIGINT, idempotency_key TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_message ON outbox (message_id);
CREATE TABLE IF NOT EXISTS resources (resource_type TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, body TEXT NOT NULL,
  patient TEXT, sender_org TEXT, receiver_org TEXT, status TEXT, focus TEXT, updated_at BIGINT NOT NULL, PRIMARY KEY (resource_type, id));
CREATE INDEX IF NOT EXISTS resources_patient ON resources (resource_type, patient);
CREATE INDEX IF NOT EXISTS resources_focus ON resources (resource_type, focus);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, source TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL, report TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partners (name TEXT PRIMARY KEY, org TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL)
