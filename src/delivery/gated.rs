//! A pipeline sink that sends each referral bundle through the consent gate to a destination: what the
//! gate releases is delivered (redacted as decided), what it withholds is counted and explained, never
//! written. Referrals addressed to another agency (their ServiceRequest's performer) are skipped. The
//! destination is any kind of the registry (`onedoor convert --recipient` builds a `file` or `hmis-csv`
//! one on its staged output); its async send is driven on the runtime handle the sink is given.

use super::destination::{Delivery, Destination, Outcome};
use crate::canonical::bundle;
use crate::consent::{ConsentGate, Disclosing, Withheld};
use crate::pipeline::Sink;
use chrono::{DateTime, FixedOffset};
use serde_json::Value;

/// Gate, then deliver.
pub struct GatedSink {
    gate: ConsentGate,
    destination: Box<dyn Destination>,
    runtime: tokio::runtime::Handle,
    request: Disclosing,
    time: DateTime<FixedOffset>,
    lines: u64,
    resources: u64,
    /// Why each withheld record was withheld (`Patient/id: reason`), no personal data.
    pub withheld: Vec<String>,
    /// Records whose ServiceRequest names another performer (not for this recipient).
    pub not_addressed: u64,
}

/// Whether the record's ServiceRequest names the recipient as performer (records without a
/// ServiceRequest or without a performer, such as roster entries and HMIS events, are addressed to whoever
/// asks).
fn addressed_to(record: &Value, recipient: &str) -> bool {
    let resources = crate::consent::subject::resources(record);
    let Some(request) = resources
        .iter()
        .find(|r| r["resourceType"] == "ServiceRequest")
    else {
        return true;
    };
    let aliases = crate::consent::subject::organization_aliases(record, recipient);
    let performers = request["performer"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    performers.is_empty()
        || performers
            .iter()
            .any(|p| crate::consent::model::Party::from_reference(p).is_any_of(&aliases))
}

impl GatedSink {
    /// Send to `destination` what `gate` releases for `request` at `time`, driving the sends on `runtime`
    /// (called from outside it).
    pub fn new(
        gate: ConsentGate,
        destination: Box<dyn Destination>,
        runtime: tokio::runtime::Handle,
        request: Disclosing,
        time: DateTime<FixedOffset>,
    ) -> Self {
        Self {
            gate,
            destination,
            runtime,
            request,
            time,
            lines: 0,
            resources: 0,
            withheld: Vec::new(),
            not_addressed: 0,
        }
    }
}

impl GatedSink {
    /// Deliver one released record; anything but delivered stops the run.
    fn deliver(&self, released: &crate::consent::Released<Value>) -> std::io::Result<()> {
        // The CLI's destinations write files: no receiver deduplicates on a key.
        let delivery = Delivery::released(released, "convert");
        match self.runtime.block_on(self.destination.send(delivery)) {
            Outcome::Delivered => Ok(()),
            failed => Err(std::io::Error::other(
                failed.reason().unwrap_or_default().to_owned(),
            )),
        }
    }
}

impl Sink for GatedSink {
    fn accept(&mut self, resources: Vec<Value>, passthrough: bool) -> std::io::Result<()> {
        let record = bundle::group_record(resources, passthrough);
        if !addressed_to(&record, &self.request.recipient) {
            self.not_addressed += 1;
            return Ok(());
        }
        match self.gate.release(record, self.request.clone(), self.time) {
            Ok(released) => {
                self.resources +=
                    crate::consent::subject::resources(released.record()).len() as u64;
                self.lines += 1;
                self.deliver(&released)
            }
            Err(Withheld::Denied(decision)) => {
                let reason = decision.explanation.last().cloned().unwrap_or_default();
                self.withheld.push(format!(
                    "{}: {:?}: {reason}",
                    decision.patient, decision.outcome
                ));
                Ok(())
            }
            Err(other) => Err(std::io::Error::other(other.to_string())),
        }
    }

    fn written(&self) -> (u64, u64) {
        (self.lines, self.resources)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.destination.finish()
    }
}
