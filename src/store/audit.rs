//! The audit chain, its anchored head, and the disclosure log, in the store: one chain per deployment.
//!
//! Appending takes the head row first (an `UPDATE` of `audit_head`, the first write of its transaction),
//! so the database serialises appenders — the CLI and any number of nodes — not a process mutex; the new
//! entries and the head's new length and hash are written in that same transaction, together with whatever
//! the entries record (a message and its deliveries, a delivery marked delivered with its disclosure). The
//! head can be exported as a signed checkpoint (Ed25519) an auditor keeps: a chain rewritten behind it no
//! longer matches it.

use super::{AnyQuery, Insert, Store, StoreError, WriteTx, now_ms};
use crate::consent::audit::{self, AuditEntry, AuditError, AuditTrail, ChainHead, Disclosure};
use sqlx::Row;

impl Store {
    /// Take the chain's head for this transaction (every other appender waits until it ends).
    pub async fn lock_chain(&self, tx: &mut WriteTx<'_>) -> Result<ChainHead, StoreError> {
        let row = sqlx::query(
            &self.sql("UPDATE audit_head SET updated_at = $1 WHERE id = 1 RETURNING seq, hash"),
        )
        .bind(now_ms())
        .fetch_one(tx.conn())
        .await?;
        tx.holds_chain = true;
        Ok(ChainHead {
            length: row.try_get::<i64, _>("seq")? as u64,
            hash: row.try_get("hash")?,
        })
    }

    /// Append entries after `head` (taken by [`Store::lock_chain`] in the same transaction) and move the head.
    pub async fn append_audit(
        &self,
        tx: &mut WriteTx<'_>,
        head: &mut ChainHead,
        entries: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let sealed = seal(head, entries);
        self.insert_sealed(tx, &sealed).await?;
        self.move_head(tx, head).await
    }

    /// Write `head` (advanced by [`seal`]) to the head row, inside `tx`.
    pub async fn settle_chain(
        &self,
        tx: &mut WriteTx<'_>,
        head: &ChainHead,
    ) -> Result<(), StoreError> {
        self.move_head(tx, head).await
    }

    async fn move_head(&self, tx: &mut WriteTx<'_>, head: &ChainHead) -> Result<(), StoreError> {
        sqlx::query(&self.sql("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1"))
            .bind(head.length as i64)
            .bind(&head.hash)
            .execute(tx.conn())
            .await?;
        Ok(())
    }

    /// Insert entries sealed by [`seal`] (the head row is moved by [`Store::settle_chain`]).
    pub async fn insert_sealed(
        &self,
        tx: &mut WriteTx<'_>,
        entries: &[AuditEntry],
    ) -> Result<(), StoreError> {
        let rows = sealed_rows(entries)?;
        self.insert_many(tx, &sealed_insert(&rows)).await
    }

    /// Append entries in a transaction of their own.
    pub async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let mut head = self.lock_chain(&mut tx).await?;
        self.append_audit(&mut tx, &mut head, entries).await?;
        tx.commit().await
    }

    /// Record a disclosure inside `tx`.
    pub async fn record_disclosure(
        &self,
        tx: &mut WriteTx<'_>,
        delivery: Option<&str>,
        disclosure: &Disclosure,
    ) -> Result<(), StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(&self.sql(
            "INSERT INTO disclosures (id, outbox_id, recorded_at, body) VALUES ($1, $2, $3, $4)",
        ))
        .bind(&id)
        .bind(delivery)
        .bind(now_ms())
        .bind(serde_json::to_string(disclosure)?)
        .execute(tx.conn())
        .await?;
        for key in disclosure.person_keys() {
            sqlx::query(
                &self
                    .sql("INSERT INTO disclosure_keys (disclosure_id, person_key) VALUES ($1, $2)"),
            )
            .bind(&id)
            .bind(key)
            .execute(tx.conn())
            .await?;
        }
        Ok(())
    }

    /// Every disclosure about a person (by `Patient/id`, an identifier `system|value`, or its value).
    pub async fn disclosures(&self, person: &str) -> Result<Vec<Disclosure>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT d.body FROM disclosures d JOIN disclosure_keys k ON k.disclosure_id = d.id \
             WHERE k.person_key = $1 ORDER BY d.recorded_at",
        ))
        .bind(person)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>("body")?)?))
            .collect()
    }

    /// The chain's entries in order, and its head. The head is read first and the entries up to it: the
    /// entries and the head move in one transaction, so entries a running server appends meanwhile (after
    /// the head read) are left out rather than seen as a chain longer than its head.
    pub async fn audit_chain(&self) -> Result<(Vec<AuditEntry>, ChainHead), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        let head = ChainHead {
            length: row.try_get::<i64, _>("seq")? as u64,
            hash: row.try_get("hash")?,
        };
        let rows =
            sqlx::query(&self.sql("SELECT entry FROM audit_entries WHERE seq <= $1 ORDER BY seq"))
                .bind(head.length as i64)
                .fetch_all(self.pool())
                .await?;
        let mut entries = rows
            .iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>("entry")?)?))
            .collect::<Result<Vec<AuditEntry>, StoreError>>()?;
        // Entries beyond the head in one statement's snapshot were written without moving it (tampering):
        // they are returned too, so verification reports a chain longer than its head.
        let orphans: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM audit_entries WHERE seq > (SELECT seq FROM audit_head WHERE id = 1)",
        )
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        if orphans > 0 {
            let rows = sqlx::query(
                &self.sql("SELECT entry FROM audit_entries WHERE seq > $1 ORDER BY seq"),
            )
            .bind(head.length as i64)
            .fetch_all(self.pool())
            .await?;
            for row in &rows {
                entries.push(serde_json::from_str(&row.try_get::<String, _>("entry")?)?);
            }
        }
        Ok((entries, head))
    }

    /// Migrate an audit folder of an earlier version into the store, once: its entries continue as the
    /// start of the store's chain (their hashes are kept), its disclosures are recorded, and its files are
    /// renamed `*.migrated`. Refused when the store's chain already has entries (two chains cannot be
    /// joined) or when the folder's own chain is broken. Returns the entries migrated.
    pub async fn migrate_audit_folder(&self, dir: &std::path::Path) -> Result<u64, StoreError> {
        let (entries, disclosures) =
            audit::read_folder(dir).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if entries.is_empty() && disclosures.is_empty() {
            return Ok(0);
        }
        let head = ChainHead {
            length: entries.len() as u64,
            hash: entries
                .last()
                .map_or(audit::GENESIS.to_owned(), |e| e.hash.clone()),
        };
        audit::verify_chain(&entries, &head).map_err(|problems| {
            StoreError::Corrupt(format!("{}: {}", dir.display(), problems.join("; ")))
        })?;
        let mut tx = self.begin().await?;
        let current = self.lock_chain(&mut tx).await?;
        if current.length > 0 {
            return Err(StoreError::Corrupt(format!(
                "{}: the store's audit chain already has {} entries; the folder's {} entries are left where they are",
                dir.display(),
                current.length,
                entries.len()
            )));
        }
        self.import_entries(&mut tx, &entries, &head).await?;
        for disclosure in &disclosures {
            self.record_disclosure(&mut tx, None, disclosure).await?;
        }
        tx.commit().await?;
        rename_migrated(dir);
        Ok(entries.len() as u64)
    }

    async fn import_entries(
        &self,
        tx: &mut WriteTx<'_>,
        entries: &[AuditEntry],
        head: &ChainHead,
    ) -> Result<(), StoreError> {
        self.insert_sealed(tx, entries).await?;
        self.move_head(tx, head).await
    }
}

/// Seal `entries` after `head`, in order, and advance `head` to the last of them.
pub fn seal(head: &mut ChainHead, entries: Vec<AuditEntry>) -> Vec<AuditEntry> {
    entries
        .into_iter()
        .map(|entry| {
            let sealed = entry.sealed(head.length + 1, &head.hash);
            head.length = sealed.seq;
            head.hash = sealed.hash.clone();
            sealed
        })
        .collect()
}

fn rename_migrated(dir: &std::path::Path) {
    for file in [audit::AUDIT_FILE, audit::DISCLOSURE_FILE] {
        let path = dir.join(file);
        if path.exists() {
            let _ = std::fs::rename(&path, dir.join(format!("{file}.migrated")));
        }
    }
}

/// A trail into the store for synchronous callers (the CLI): each entry is appended in its own
/// transaction on the given runtime.
pub struct StoreTrail {
    store: Store,
    runtime: tokio::runtime::Handle,
}

impl StoreTrail {
    /// A trail into `store`, run on `runtime` (not from inside it: the calls block).
    pub fn new(store: Store, runtime: tokio::runtime::Handle) -> Self {
        Self { store, runtime }
    }
}

impl AuditTrail for StoreTrail {
    fn record(&mut self, entry: AuditEntry) -> Result<(), AuditError> {
        self.runtime
            .block_on(self.store.audit(vec![entry]))
            .map_err(|e| AuditError::Store(e.to_string()))
    }

    fn disclose(&mut self, disclosure: &Disclosure) -> Result<(), AuditError> {
        self.runtime
            .block_on(async {
                let mut tx = self.store.begin().await?;
                self.store
                    .record_disclosure(&mut tx, None, disclosure)
                    .await?;
                tx.commit().await
            })
            .map_err(|e| AuditError::Store(e.to_string()))
    }
}

/// A signed checkpoint of the chain's head.
pub mod checkpoint {
    use crate::consent::audit::ChainHead;
    use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
    use serde::{Deserialize, Serialize};
    use std::path::Path;

    /// The head at a moment, signed.
    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
    pub struct Checkpoint {
        /// The number of entries.
        pub length: u64,
        /// The last entry's hash.
        pub hash: String,
        /// When it was taken (RFC 3339).
        pub time: String,
        /// The signer's Ed25519 public key (hex).
        pub public_key: String,
        /// The signature over [`Checkpoint::signed_text`] (hex).
        pub signature: String,
    }

    /// Why a checkpoint could not be made or checked.
    #[derive(Debug, thiserror::Error)]
    pub enum CheckpointError {
        /// The key file.
        #[error("{path}: {message}")]
        Key {
            /// The file.
            path: String,
            /// What is wrong.
            message: String,
        },
        /// The signature does not verify.
        #[error("the checkpoint's signature does not verify with its public key")]
        BadSignature,
    }

    impl Checkpoint {
        /// The text that is signed.
        pub fn signed_text(length: u64, hash: &str, time: &str) -> String {
            format!("onedoor audit checkpoint v1\nlength {length}\nhash {hash}\ntime {time}\n")
        }

        /// Sign `head` with the key in `key_file` (PKCS#8), creating the key (mode 0600) when the file
        /// does not exist.
        pub fn sign(head: &ChainHead, key_file: &Path) -> Result<Self, CheckpointError> {
            let pair = load_or_create_key(key_file)?;
            let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let text = Self::signed_text(head.length, &head.hash, &time);
            Ok(Self {
                length: head.length,
                hash: head.hash.clone(),
                time,
                public_key: hex(pair.public_key().as_ref()),
                signature: hex(pair.sign(text.as_bytes()).as_ref()),
            })
        }

        /// Check the signature (the caller compares `public_key` with the one it trusts).
        pub fn check_signature(&self) -> Result<(), CheckpointError> {
            let key = unhex(&self.public_key).ok_or(CheckpointError::BadSignature)?;
            let signature = unhex(&self.signature).ok_or(CheckpointError::BadSignature)?;
            let text = Self::signed_text(self.length, &self.hash, &self.time);
            UnparsedPublicKey::new(&ED25519, key)
                .verify(text.as_bytes(), &signature)
                .map_err(|_| CheckpointError::BadSignature)
        }
    }

    fn load_or_create_key(path: &Path) -> Result<Ed25519KeyPair, CheckpointError> {
        let error = |message: String| CheckpointError::Key {
            path: path.display().to_string(),
            message,
        };
        if !path.exists() {
            let rng = ring::rand::SystemRandom::new();
            let document =
                Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| error(e.to_string()))?;
            write_private(path, document.as_ref()).map_err(|e| error(e.to_string()))?;
        }
        let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        Ed25519KeyPair::from_pkcs8(&bytes)
            .map_err(|e| error(format!("not an Ed25519 PKCS#8 key: {e}")))
    }

    fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Option<Vec<u8>> {
        if !text.len().is_multiple_of(2) {
            return None;
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect()
    }
}

/// Sealed entries with their JSON text, as [`sealed_insert`] writes them.
pub(crate) fn sealed_rows(
    entries: &[AuditEntry],
) -> Result<Vec<(&AuditEntry, String)>, StoreError> {
    (entries.iter())
        .map(|entry| Ok((entry, serde_json::to_string(entry)?)))
        .collect()
}

/// The insert of sealed entries (the head row is moved by [`Store::settle_chain`]).
pub(crate) fn sealed_insert<'r, 'e>(
    rows: &'r [(&'e AuditEntry, String)],
) -> Insert<'r, (&'e AuditEntry, String)> {
    fn bind<'q>(query: AnyQuery<'q>, (entry, text): &'q (&AuditEntry, String)) -> AnyQuery<'q> {
        query.bind(entry.seq as i64).bind(&entry.hash).bind(text)
    }
    Insert {
        into: "audit_entries (seq, hash, entry)",
        columns: &["", "", ""],
        rows,
        shared: None,
        bind,
    }
}
