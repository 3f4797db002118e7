//! The destination kinds: one [`Kind`] per kind, each in its own file, listed once in [`KINDS`]. The
//! server's outbox builds its destinations from the configuration with [`build`], the CLI's gated release
//! with [`build_local`] (writing to its staged output); `onedoor config check` asks [`check`].
//!
//! Adding a kind: write `src/delivery/<kind>.rs` with a `KIND` constant and a type implementing
//! [`Destination`](super::Destination), declare the module in `delivery/mod.rs`, and add one line here.

use super::destination::Destination;
use super::{fhir_rest, file, hmis_csv, webhook};
use crate::config;
use std::io::Write;
use std::path::PathBuf;

/// Every destination kind.
pub const KINDS: &[Kind] = &[fhir_rest::KIND, webhook::KIND, file::KIND, hmis_csv::KIND];

/// One destination kind.
pub struct Kind {
    /// The name in `[destinations.NAME] kind`.
    pub name: &'static str,
    /// Whether its endpoint is an http(s) URL (else a path).
    pub remote: bool,
    /// Build one destination.
    pub build: fn(Spec<'_>) -> Result<Box<dyn Destination>, BuildError>,
}

/// What a kind builds from.
pub struct Spec<'a> {
    /// The destination's name (for errors).
    pub name: &'a str,
    /// Its configuration.
    pub destination: &'a config::Destination,
    /// The CLI's output, which file kinds write to instead of the configured endpoint.
    pub output: Option<LocalOutput>,
}

/// Where the CLI's gated release writes.
pub enum LocalOutput {
    /// NDJSON to a stream, obligations to a side stream.
    Stream {
        /// The records.
        out: Box<dyn Write + Send>,
        /// The side file.
        side: Option<Box<dyn Write + Send>>,
    },
    /// HMIS CSV into a folder.
    Folder {
        /// The folder.
        dir: PathBuf,
        /// The HMIS project referrals are enrolled in.
        project: String,
    },
}

/// A destination that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("destinations.{name}.{key}: {detail}")]
pub struct BuildError {
    name: String,
    key: &'static str,
    detail: String,
}

impl BuildError {
    /// Destination `name`'s `key` is wrong: `detail`.
    pub fn new(name: &str, key: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            key,
            detail: detail.into(),
        }
    }
}

/// The kind a configured destination is (`kind = "file"` with `format = "hmis-csv"` is `hmis-csv`).
pub fn kind_name(destination: &config::Destination) -> &str {
    if destination.kind == file::KIND.name
        && destination.format == config::DestinationFormat::HmisCsv
    {
        return hmis_csv::KIND.name;
    }
    &destination.kind
}

/// The kind of that name.
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// What is wrong with a configured destination's kind or endpoint (`key: problem`).
pub fn check(destination: &config::Destination) -> Option<String> {
    let Some(kind) = find(kind_name(destination)) else {
        let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        return Some(format!(
            "kind: unknown destination kind '{}' (expected one of: {})",
            destination.kind,
            known.join(", ")
        ));
    };
    let url =
        destination.endpoint.starts_with("http://") || destination.endpoint.starts_with("https://");
    (kind.remote && !url)
        .then(|| format!("endpoint: '{}' is not an http(s) URL", destination.endpoint))
}

/// Build configured destination `name`.
pub fn build(
    name: &str,
    destination: &config::Destination,
) -> Result<Box<dyn Destination>, BuildError> {
    build_with(name, destination, None)
}

/// Build a destination of `kind` that writes to the CLI's `output`.
pub fn build_local(
    kind: &str,
    org: &str,
    output: LocalOutput,
) -> Result<Box<dyn Destination>, BuildError> {
    let destination = config::Destination::local(kind, org);
    build_with("output", &destination, Some(output))
}

fn build_with(
    name: &str,
    destination: &config::Destination,
    output: Option<LocalOutput>,
) -> Result<Box<dyn Destination>, BuildError> {
    let kind = find(kind_name(destination)).ok_or_else(|| {
        BuildError::new(
            name,
            "kind",
            format!("unknown destination kind '{}'", destination.kind),
        )
    })?;
    (kind.build)(Spec {
        name,
        destination,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::{KINDS, check, kind_name};
    use crate::config::{Destination, DestinationFormat};

    #[test]
    fn every_kind_is_listed_once_and_the_configuration_is_checked_against_them() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names, ["fhir-rest", "file", "hmis-csv", "webhook"]);
        let mut drop = Destination::local("file", "s|v");
        drop.endpoint = "var/drop.ndjson".into();
        assert_eq!(check(&drop), None);
        drop.format = DestinationFormat::HmisCsv;
        assert_eq!(kind_name(&drop), "hmis-csv");
        let mut rest = Destination::local("fhir-rest", "s|v");
        rest.endpoint = "var/x".into();
        assert!(check(&rest).is_some_and(|p| p.starts_with("endpoint:")));
        let unknown = Destination::local("carrier-pigeon", "s|v");
        assert!(
            check(&unknown)
                .is_some_and(|p| p.contains("unknown destination kind 'carrier-pigeon'"))
        );
    }
}
