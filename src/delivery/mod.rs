//! Delivery: encoders and destinations. Each accepts only [`Released`](crate::consent::Released) records,
//! which only the consent gate can produce, so nothing reaches a receiver without a recorded decision.
//!
//! Every destination kind implements one trait, [`Destination`] (in `destination`), in a file of its own
//! (`fhir_rest`, `webhook`, `file`, `hmis_csv`; the HTTP kinds share `http`), and is listed once in
//! `registry`, which both the CLI's gated release (`gated`) and the server's outbox build from. The
//! server's destinations are built in `send`, worked concurrently by `outbox`; Subscription channels
//! (notifications, handshakes, heartbeats) are in `channel`. Obligations a format cannot
//! carry (HMIS CSV, file drops) travel in a side file (`obligations`).

pub mod channel;
pub mod destination;
pub mod encode;
pub mod fhir_rest;
pub mod file;
pub mod gated;
pub mod hmis_csv;
pub mod http;
pub mod obligations;
pub mod outbox;
pub mod registry;
pub mod send;
pub mod webhook;

pub use destination::{Delivery, Destination, Outcome, Payload};
pub use file::NdjsonFileDestination;
pub use gated::GatedSink;
