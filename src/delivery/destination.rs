//! The one shape of every destination kind: [`Destination::send`] takes a released record (or an id-only
//! notification) to a receiver and says what came of it as an [`Outcome`]: delivered, retry (perhaps after
//! the receiver's `Retry-After`), or a permanent failure. The outbox records the outcome; the CLI's gated
//! release stops on anything but delivered. Implementations are one file per kind, listed in
//! [`registry`](super::registry).

use crate::consent::Released;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future that can move between threads (what [`Destination::send`] returns, so destinations can
/// sit behind `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What is delivered.
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    /// A record the consent gate released (redacted as it decided).
    Released(&'a Released<Value>),
    /// An id-only notification (no personal data; not gated).
    Notification(&'a Value),
}

/// One attempt: the payload and the key the receiver deduplicates on (the same on every attempt).
#[derive(Clone, Copy)]
pub struct Delivery<'a> {
    /// What is sent.
    pub payload: Payload<'a>,
    /// `Idempotency-Key` / `X-Request-Id`.
    pub key: &'a str,
}

impl<'a> Delivery<'a> {
    /// A released record.
    pub fn released(released: &'a Released<Value>, key: &'a str) -> Self {
        Self {
            payload: Payload::Released(released),
            key,
        }
    }

    /// A notification.
    pub fn notification(body: &'a Value, key: &'a str) -> Self {
        Self {
            payload: Payload::Notification(body),
            key,
        }
    }

    /// The JSON body sent over HTTP.
    pub fn body(&self) -> &'a Value {
        match self.payload {
            Payload::Released(released) => released.record(),
            Payload::Notification(body) => body,
        }
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver acknowledged it (a disclosure is recorded only now).
    Delivered,
    /// It may succeed later: retried with backoff, at least `after` when the receiver asked.
    Retry {
        /// Why (no personal data).
        reason: String,
        /// The receiver's `Retry-After`.
        after: Option<Duration>,
    },
    /// It will not succeed as it is (the receiver refused the request): a dead letter at once, queued
    /// again when the destination answers again.
    Permanent {
        /// Why (no personal data).
        reason: String,
    },
}

impl Outcome {
    /// A retryable failure without `Retry-After`.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }

    /// Delivered, or an I/O error as a retryable failure (files and folders).
    pub fn of_io(result: std::io::Result<()>, what: &std::path::Path) -> Self {
        match result {
            Ok(()) => Self::Delivered,
            Err(err) => Self::retry(format!("{}: {err}", what.display())),
        }
    }

    /// Why it failed (`None` when delivered).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Delivered => None,
            Self::Retry { reason, .. } | Self::Permanent { reason } => Some(reason),
        }
    }
}

/// Something that takes released records (and notifications) to a receiver: one implementation per kind.
pub trait Destination: Send + Sync {
    /// Make one attempt. Several attempts may run at once (the outbox bounds how many per destination).
    fn send<'a>(&'a self, delivery: Delivery<'a>) -> BoxFuture<'a, Outcome>;

    /// Flush what is buffered (the CLI calls it once at the end of a run).
    fn finish(&self) -> std::io::Result<()> {
        Ok(())
    }
}
