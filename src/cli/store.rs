//! The store as the command line finds it: `--database-url` (or `ONEDOOR_DATABASE_URL`), else the
//! configuration's `server.database_url` when the configuration file exists, else the embedded default.
//! Commands that audit (`consent check`, `convert --recipient`) and those that read the audit chain append
//! to and read the same chain as the servers.

use crate::config::{self, Config};
use crate::store::Store;
use anyhow::Context;
use std::path::PathBuf;

/// Where the store is.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The store: sqlite://PATH or postgres://... (default: the configuration's server.database_url).
    #[arg(long, env = "ONEDOOR_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The configuration file (read for the store's URL and the audit folder to migrate).
    #[arg(long = "config", env = "ONEDOOR_CONFIG", default_value = config::DEFAULT_PATH)]
    pub config_path: PathBuf,
}

impl StoreArgs {
    /// The configuration, when its file exists.
    fn config(&self) -> anyhow::Result<Option<Config>> {
        if !self.config_path.exists() {
            return Ok(None);
        }
        Ok(Some(config::load(&self.config_path)?))
    }

    /// Open (and migrate) the store on `runtime`; an audit folder of an earlier version named in the
    /// configuration is migrated into it once.
    pub fn open(&self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Store> {
        let config = self.config()?;
        let url = self
            .database_url
            .clone()
            .or_else(|| config.as_ref().map(|c| c.server.database_url.clone()))
            .unwrap_or_else(|| Config::default().server.database_url);
        runtime.block_on(async {
            let store = super::serve::connect(&url).await?;
            if let Some(config) = &config {
                let migrated = store
                    .migrate_audit_folder(&config.consent.audit_dir)
                    .await
                    .with_context(|| {
                        format!("cannot migrate {}", config.consent.audit_dir.display())
                    })?;
                if migrated > 0 {
                    eprintln!("audit: {migrated} entries migrated into the store");
                }
            }
            Ok(store)
        })
    }
}

/// A runtime for the command line's store calls.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}
