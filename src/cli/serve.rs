//! `onedoor serve`: the gateway server (store, consent gate, HTTP API, outbox worker), with graceful
//! shutdown on Ctrl-C or SIGTERM that finishes in-flight requests and the delivery batch in hand.
//! Also `onedoor example-receiver`; `onedoor partners` is in `partners.rs`.

use crate::config::{self, Config};
use crate::consent::{Registry, bases};
use crate::delivery::outbox;
use crate::delivery::send::Sender;
use crate::gateway::Gateway;
use crate::http::{self, AppState, auth, listener};
use crate::store::{Checkpoints, Store};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

/// Where the configuration and the store are.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file.
    #[arg(long, env = "ONEDOOR_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// The store (overrides server.database_url): sqlite://PATH or postgres://...
    #[arg(long, env = "ONEDOOR_DATABASE_URL")]
    database_url: Option<String>,
    /// Listen address (overrides server.listen); port 0 picks a free port.
    #[arg(long)]
    listen: Option<String>,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Run `serve`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (config, url) = load(args)?;
    let workers = http_workers(config.server.workers, &url);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(serve(config, url, workers))?;
    Ok(ExitCode::SUCCESS)
}

/// The threads serving requests: `configured`, else on SQLite one fewer than the machine's cores (at least
/// one) and on PostgreSQL one a core. On SQLite a group commit's serial path is two threads of the server's
/// own (the committer and the writer connection's), which wait for a core whenever every core runs a
/// worker: with one worker on the 2-core machine, 4–13% more referrals a second and 6–14% less CPU each;
/// on PostgreSQL, whose commits run in its own processes, 4–5% fewer (BENCHMARKS.md, issue 13,
/// twenty-third round).
fn http_workers(configured: Option<usize>, url: &str) -> usize {
    if let Some(workers) = configured {
        return workers.max(1);
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if url.starts_with("sqlite:") {
        cores.saturating_sub(1).max(1)
    } else {
        cores
    }
}

/// Run `example-receiver`.
pub fn example_receiver(listen: &str, fail_first: u32, delay_ms: u64) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!(
            "example receiver listening on http://{}",
            listener.local_addr()?
        );
        let _receiver = crate::example_receiver::serve(listener, fail_first, delay_ms).await;
        tokio::signal::ctrl_c().await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn load(args: &Args) -> anyhow::Result<(Config, String)> {
    let mut config = config::load(&args.config)?;
    if let Some(listen) = &args.listen {
        config.server.listen = listen.clone();
    }
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| config.server.database_url.clone());
    Ok((config, url))
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<Store> {
    connect_with(url, Checkpoints::InCommit).await
}

/// Open the store (creating a SQLite file's folder) with the checkpointing `checkpoints` says.
async fn connect_with(url: &str, checkpoints: Checkpoints) -> anyhow::Result<Store> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
        && let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Store::connect_with(url, checkpoints)
        .await
        .with_context(|| "cannot open the store".to_owned())
}

async fn serve(config: Config, url: String, workers: usize) -> anyhow::Result<()> {
    http::guard::install_panic_hook();
    if !http::jwt_crypto::install() {
        tracing::warn!(
            "SMART client assertions are verified by another jsonwebtoken crypto provider than ring's"
        );
    }
    let store = connect_with(&url, Checkpoints::Background).await?;
    prepare_store(&config, &store).await?;
    let sender = Arc::new(Sender::new(&config).map_err(|e| anyhow::anyhow!(e))?);
    let channels = sender.channels().clone();
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let address = listener.local_addr()?;
    let gateway = Gateway::new(store, config);
    gateway
        .subscribe_notify_urls()
        .await
        .context("cannot set up the Subscriptions of partners' notify_url")?;
    // Credentials: keys, tokens and the admin token are HMACs under the server secret.
    let credentials = auth::Credentials::load(&gateway.store).await?;
    let admin_token_hash = std::env::var("ONEDOOR_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(|t| credentials.hash(&t));
    let state = Arc::new(AppState {
        gateway: gateway.clone(),
        metrics: http::metrics_handle(),
        admin_token_hash,
        credentials,
        channels: channels.clone(),
    });
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(outbox::run(gateway.clone(), sender, stopped.clone()));
    let heartbeats = tokio::spawn(crate::delivery::channel::run_heartbeats(
        gateway.clone(),
        channels,
        stopped.clone(),
    ));
    let checkpoints = tokio::spawn({
        let store = gateway.store.clone();
        let stopped = stopped.clone();
        async move { store.checkpoint_wal(CHECKPOINT_EVERY, stopped).await }
    });
    let jobs = tokio::spawn(crate::jobs::run(gateway.clone(), stopped));
    let router = http::router(state);
    let limits = connection_limits(&gateway.config.server);
    match &gateway.config.server.tls {
        Some(tls) => {
            let tls = http::tls::server_config(tls).map_err(|e| anyhow::anyhow!(e))?;
            println!("onedoor listening on https://{address}");
            tracing::info!(%address, backend = ?gateway.store.backend(), workers, "onedoor serving over TLS");
            http::tls::serve(listener, tls, router, limits, shutdown()).await;
        }
        None => {
            println!("onedoor listening on http://{address}");
            tracing::info!(%address, backend = ?gateway.store.backend(), workers, "onedoor serving");
            listener::serve(listener, listener::Plain(router), limits, shutdown()).await;
        }
    }
    let _ = stop.send(true);
    let _ = worker.await;
    let _ = jobs.await;
    let _ = heartbeats.await;
    let _ = checkpoints.await;
    eprintln!("onedoor stopped");
    Ok(())
}

/// How often the server checkpoints SQLite's write-ahead log (beside the writer, never in a commit).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// File descriptors kept for the store's pool, outbound deliveries, uploads and logs.
const RESERVED_FDS: u64 = 128;

/// The accept loop's limits; `max_connections` is kept below the file-descriptor limit (raised to the
/// hard limit first, where the system allows).
fn connection_limits(server: &config::Server) -> listener::Limits {
    let mut limits = listener::Limits::from_config(server);
    if let Some(fds) = raise_fd_limit() {
        let room = fds.saturating_sub(RESERVED_FDS).max(1) as usize;
        if limits.max_connections > room {
            tracing::warn!(
                configured = limits.max_connections,
                allowed = room,
                fds,
                "server.max_connections lowered below the file-descriptor limit"
            );
            limits.max_connections = room;
        }
    }
    tracing::info!(max_connections = limits.max_connections, "connection limit");
    limits
}

/// Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // `rlim_t` is u64 on Linux, not on every Unix
fn raise_fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn raise_fd_limit() -> Option<u64> {
    None
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down: finishing in-flight work");
}

/// Bring the store up to date with the configuration: the audit folder of an earlier version migrated
/// once, the configured consents and legal bases written in (each write bumps the counter every node
/// reads before deciding).
pub(crate) async fn prepare_store(config: &Config, store: &Store) -> anyhow::Result<()> {
    match store.migrate_audit_folder(&config.consent.audit_dir).await {
        Ok(0) => {}
        Ok(n) => eprintln!(
            "audit: {n} entries of {} migrated into the store (files renamed *.migrated)",
            config.consent.audit_dir.display()
        ),
        Err(err) => eprintln!("audit: the folder was not migrated: {err}"),
    }
    if let Some(path) = &config.consent.consents {
        let registry = Registry::load(path, None)
            .with_context(|| format!("cannot read consents at {}", path.display()))?;
        for problem in registry.problems() {
            eprintln!("consent not used: {problem}");
        }
        let written = store.sync_consents(registry.resources()).await?;
        tracing::info!(written, "configured consents written into the store");
    }
    let legal = match &config.consent.bases {
        Some(path) => bases::load(path).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?,
        None => Vec::new(),
    };
    store.sync_legal_bases(&legal).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::http_workers;

    #[test]
    fn sqlite_leaves_a_core_to_its_commits_and_a_configured_count_wins() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(
            http_workers(None, "sqlite://var/onedoor.db"),
            (cores - 1).max(1)
        );
        assert_eq!(http_workers(None, "postgres://db/onedoor"), cores);
        assert_eq!(http_workers(Some(3), "sqlite://var/onedoor.db"), 3);
        assert_eq!(http_workers(Some(3), "postgres://db/onedoor"), 3);
    }
}
