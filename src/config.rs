//! The configuration file (`config/onedoor.toml`): where mappings live and the sources this installation
//! converts (`[sources.NAME]`: mapping, input, roster, source system, output format).
//!
//! Every problem is collected, not just the first: unknown keys, unknown mappings, missing inputs. Each
//! names the file and the key (`config/onedoor.toml: sources.referrals.mapping: ...`).

use crate::mapping::catalog;
use crate::pipeline::OutputFormat;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default configuration file.
pub const DEFAULT_PATH: &str = "config/onedoor.toml";

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Installation-wide settings.
    #[serde(default)]
    pub gateway: Gateway,
    /// The sources, by name.
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
}

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// The mappings folder.
    #[serde(default = "default_mappings")]
    pub mappings: PathBuf,
}

impl Default for Gateway {
    fn default() -> Self {
        Self {
            mappings: default_mappings(),
        }
    }
}

fn default_mappings() -> PathBuf {
    PathBuf::from("mappings")
}

/// `[sources.NAME]`: one system's export and how to convert it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The mapping's name.
    pub mapping: String,
    /// The export (file or folder).
    pub input: PathBuf,
    /// The roster, for referral mappings.
    #[serde(default)]
    pub roster: Option<PathBuf>,
    /// Overrides the mapping's source system URI.
    #[serde(default)]
    pub source_system: Option<String>,
    /// Output format.
    #[serde(default)]
    pub format: Format,
}

/// Output format as written in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One resource per line.
    #[default]
    Ndjson,
    /// One Bundle per line.
    Bundle,
}

impl From<Format> for OutputFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Ndjson => OutputFormat::Ndjson,
            Format::Bundle => OutputFormat::Bundle,
        }
    }
}

/// Problems in a configuration file, all of them.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// Read and check a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(vec![format!("{shown}: cannot read: {e}")]))?;
    let config: Config = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| crate::mapping::model::line_of(&text, s.start))
            .unwrap_or(1);
        ConfigError(vec![format!("{shown}:{line}: {}", e.message())])
    })?;
    let problems = check(&config, &shown);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError(problems))
    }
}

fn check(config: &Config, shown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !config.gateway.mappings.is_dir() {
        problems.push(format!(
            "{shown}: gateway.mappings: {} is not a folder",
            config.gateway.mappings.display()
        ));
    }
    let known: Vec<String> = catalog::mapping_files(&config.gateway.mappings)
        .iter()
        .filter_map(|p| catalog::load(p).ok())
        .map(|m| m.name().to_owned())
        .collect();
    for (name, source) in &config.sources {
        if !known.contains(&source.mapping) {
            problems.push(format!(
                "{shown}: sources.{name}.mapping: no mapping named '{}' (known: {})",
                source.mapping,
                known.join(", ")
            ));
        }
        if !source.input.exists() {
            problems.push(format!(
                "{shown}: sources.{name}.input: {} does not exist",
                source.input.display()
            ));
        }
        if let Some(roster) = source.roster.as_ref().filter(|r| !r.exists()) {
            problems.push(format!(
                "{shown}: sources.{name}.roster: {} does not exist",
                roster.display()
            ));
        }
    }
    problems
}
