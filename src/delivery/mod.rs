//! Delivery: encoders and destinations. Each accepts only [`Released`] records, which only the consent gate
//! can produce, so nothing reaches a receiver without a recorded decision. The outbox, retries and the FHIR
//! REST and webhook destinations are in `send`, the worker in `outbox`. Obligations a format cannot carry
//! (HMIS CSV, file drops) travel in a side file (`obligations`).

pub mod encode;
pub mod file;
pub mod gated;
pub mod hmis_csv;
pub mod obligations;
pub mod outbox;
pub mod send;

pub use file::NdjsonFileDestination;
pub use gated::GatedSink;

use crate::consent::Released;
use serde_json::Value;

/// Something that takes released records to a receiver.
pub trait Destination {
    /// Deliver one released record.
    fn deliver(&mut self, released: &Released<Value>) -> std::io::Result<()>;
    /// Flush what is buffered.
    fn flush(&mut self) -> std::io::Result<()>;
}
