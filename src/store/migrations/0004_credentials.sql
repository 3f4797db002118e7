-- credentials: partners keep their name and organization; their keys move to partner_keys (several per
-- partner, each with an expiry, a revocation and a rotation grace), hashed with HMAC-SHA-256 under the
-- server secret. The bare SHA-256 key hashes of earlier versions cannot be carried over: issue new keys
-- (`onedoor partners add NAME`, or `--key` with the same key to keep it).
CREATE TABLE partners_v4 (name TEXT PRIMARY KEY, org TEXT NOT NULL, created_at BIGINT NOT NULL);
INSERT INTO partners_v4 (name, org, created_at) SELECT name, org, created_at FROM partners;
DROP TABLE partners;
ALTER TABLE partners_v4 RENAME TO partners;
CREATE TABLE partner_keys (id TEXT PRIMARY KEY, partner TEXT NOT NULL, prefix TEXT NOT NULL, hash TEXT NOT NULL,
  created_at BIGINT NOT NULL, expires_at BIGINT, revoked_at BIGINT, grace_until BIGINT, last_used_at BIGINT);
CREATE INDEX partner_keys_prefix ON partner_keys (prefix);
CREATE INDEX partner_keys_partner ON partner_keys (partner);
-- the server secret every node shares (unless ONEDOOR_SECRET is set): one row, written once
CREATE TABLE server_secret (id BIGINT PRIMARY KEY, secret TEXT NOT NULL, created_at BIGINT NOT NULL);
-- SMART Backend Services: assertion ids seen (a replay is refused on every node) and access tokens issued
CREATE TABLE smart_jtis (partner TEXT NOT NULL, jti TEXT NOT NULL, expires_at BIGINT NOT NULL,
  PRIMARY KEY (partner, jti));
CREATE INDEX smart_jtis_expiry ON smart_jtis (expires_at);
CREATE TABLE access_tokens (id TEXT PRIMARY KEY, partner TEXT NOT NULL, hash TEXT NOT NULL, scopes TEXT NOT NULL,
  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at)
