//! The accept loop of `serve`, for plain HTTP and TLS alike (hyper-util over tokio), with what keeps a few
//! clients from stalling the server:
//!
//! - a connection limit (`server.max_connections`): at the limit the loop stops accepting and further
//!   connections wait in the listen backlog until a slot frees (they are not refused); a slot is held by a
//!   stalled client at most the header read timeout, so a normal client waits at most that long;
//! - a deadline for the TLS handshake and for each request head (`server.header_read_timeout_ms`): a client
//!   that stalls mid-headers is disconnected; heads are limited to `server.max_header_bytes` (431 beyond);
//! - graceful shutdown with a deadline (`server.shutdown_grace_ms`): once the shutdown signal comes, no
//!   connection is accepted, connections finish their request in flight, and those still open at the
//!   deadline are dropped.

use crate::config::Server;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service;

/// The limits of the accept loop (from `[server]`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Deadline for the TLS handshake and for each request head.
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes (at least 8 KiB, hyper's floor).
    pub max_header_bytes: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for open connections.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// The configured limits; `max_connections` as given (see `cli::serve` for the descriptor limit).
    pub fn from_config(server: &Server) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(server.header_read_timeout_ms.max(1)),
            max_header_bytes: server.max_header_bytes.max(8192),
            max_connections: server.max_connections.max(1),
            shutdown_grace: Duration::from_millis(server.shutdown_grace_ms),
        }
    }
}

/// How an accepted TCP connection becomes a stream HTTP is spoken on (plain, or after a TLS handshake),
/// and which router serves it (a TLS handshake may add what it learnt of the peer).
pub trait Handshake: Clone + Send + Sync + 'static {
    /// The stream after the handshake.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Complete the handshake; `None` refuses the connection (already logged).
    fn handshake(
        &self,
        stream: TcpStream,
    ) -> impl Future<Output = Option<(Self::Io, Router)>> + Send;
}

/// Plain HTTP: the stream as accepted.
#[derive(Clone)]
pub struct Plain(pub Router);

impl Handshake for Plain {
    type Io = TcpStream;
    async fn handshake(&self, stream: TcpStream) -> Option<(TcpStream, Router)> {
        Some((stream, self.0.clone()))
    }
}

/// Accept connections until `shutdown` completes, then drain them within the grace period.
pub async fn serve<H: Handshake>(
    listener: TcpListener,
    handshake: H,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // EMFILE and the like: wait a little rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let (handshake, limits, closed) = (handshake.clone(), limits.clone(), closed.clone());
        connections.spawn(connection(stream, handshake, limits, closed, slot));
    }
    drop(listener);
    drain(connections, closing, limits.shutdown_grace).await;
}

/// Ask every connection to finish its request in flight; drop those still open at the deadline.
async fn drain(mut connections: JoinSet<()>, closing: watch::Sender<bool>, grace: Duration) {
    let _ = closing.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "shutdown grace period over: dropping the connections still open"
        );
        connections.shutdown().await;
    }
}

/// Completes once shutdown has begun.
async fn closing_signal(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

async fn connection<H: Handshake>(
    stream: TcpStream,
    handshake: H,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let shaken =
        tokio::time::timeout(limits.header_read_timeout, handshake.handshake(stream)).await;
    let Ok(Some((io, router))) = shaken else {
        tracing::debug!("connection closed before HTTP: handshake refused or too slow");
        return;
    };
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            router.clone().call(request.map(axum::body::Body::new))
        });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    let served = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    let ended = tokio::select! {
        ended = served.as_mut() => ended,
        () = closing_signal(&mut closing) => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(err) = ended {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}
