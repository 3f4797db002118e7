-- FHIR Subscriptions (R5 Backport IG for R4): the partner that asked, its channel and filter, its status,
-- the events counted since it started, and when something was last sent to it (for heartbeats)
CREATE TABLE subscriptions (id TEXT PRIMARY KEY, partner TEXT NOT NULL, org TEXT NOT NULL, version BIGINT NOT NULL,
  status TEXT NOT NULL, endpoint TEXT NOT NULL, headers TEXT NOT NULL, heartbeat_secs BIGINT NOT NULL,
  statuses TEXT NOT NULL, events BIGINT NOT NULL, last_sent_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,
  body TEXT NOT NULL);
CREATE INDEX subscriptions_org ON subscriptions (org, status)
