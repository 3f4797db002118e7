//! The configuration file (`config/onedoor.toml`): where mappings live, the sources this installation
//! converts or ingests, the gateway server (listener, store), consent settings, destinations, routes and
//! partners.
//!
//! Any value can be overridden from the environment as `ONEDOOR_<SECTION>__<KEY>` (for example
//! `ONEDOOR_SERVER__LISTEN=0.0.0.0:8080`, `ONEDOOR_DESTINATIONS__FOOD_BANK__ENDPOINT=https://...`: names are
//! lower-cased, and a `_` in a table name also matches a `-`). Secrets never sit in the file: a destination
//! names the environment variable that holds its token (`token_env`). Every problem is collected, not just
//! the first, and each names the file and the key.

use crate::mapping::catalog;
use crate::record::{OrgRef, OutputFormat};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Value;

/// The default configuration file.
pub const DEFAULT_PATH: &str = "config/onedoor.toml";

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Installation-wide settings.
    #[serde(default)]
    pub gateway: Gateway,
    /// The gateway server.
    #[serde(default)]
    pub server: Server,
    /// Consent settings.
    #[serde(default)]
    pub consent: ConsentSettings,
    /// The sources, by name.
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    /// Where referrals are delivered, by name.
    #[serde(default)]
    pub destinations: BTreeMap<String, Destination>,
    /// Which referrals go where.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// The partners (systems that call the gateway), by name.
    #[serde(default)]
    pub partners: BTreeMap<String, Partner>,
}

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// The mappings folder.
    #[serde(default = "default_mappings")]
    pub mappings: PathBuf,
    /// The secret salting repeat-incident key hashes (`niem` sources); set one per deployment.
    #[serde(default)]
    pub history_salt: Option<String>,
}

impl Default for Gateway {
    fn default() -> Self {
        Self {
            mappings: default_mappings(),
            history_salt: None,
        }
    }
}

fn default_mappings() -> PathBuf {
    PathBuf::from("mappings")
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Listen address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The store: `sqlite://var/onedoor.db` (default) or `postgres://...`.
    #[serde(default = "default_database")]
    pub database_url: String,
    /// The public base URL (for fullUrl and notifications).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Largest accepted upload, in bytes.
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: usize,
    /// How often the outbox worker looks for due work, in milliseconds.
    #[serde(default = "default_poll")]
    pub outbox_poll_ms: u64,
    /// At most this many attempts before a dead letter, whatever the window; 0 (the default) sets no
    /// limit: the retry window decides.
    #[serde(default)]
    pub max_attempts: i64,
    /// First retry delay in milliseconds (doubles each attempt, with jitter, up to `retry_max_delay_ms`).
    #[serde(default = "default_backoff")]
    pub retry_base_ms: u64,
    /// The longest wait between two attempts (a receiver's `Retry-After` may ask for more, within the
    /// window).
    #[serde(default = "default_max_delay")]
    pub retry_max_delay_ms: u64,
    /// How long a delivery is retried, from when it was queued, before it is dead-lettered (default 24 h).
    #[serde(default = "default_retry_window")]
    pub retry_window_ms: u64,
    /// How often a destination with dead letters is probed (one dead letter tried again); when it
    /// answers, its dead letters are queued again (default 60 s).
    #[serde(default = "default_probe")]
    pub dead_letter_probe_ms: u64,
    /// How long a worker holds claimed deliveries; after a crash they are claimed again when it ends. Keep
    /// it above the longest destination timeout.
    #[serde(default = "default_lease")]
    pub claim_lease_ms: u64,
    /// TLS on the listener; with `client_ca`, mutual TLS (clients must present a certificate it signed).
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Largest JSON body (every route but `/ingest`), in bytes; 413 beyond (default 1 MiB).
    #[serde(default = "default_max_json")]
    pub max_json_bytes: usize,
    /// Largest request head (request line and headers), in bytes; 431 beyond (default 64 KiB).
    #[serde(default = "default_max_header")]
    pub max_header_bytes: usize,
    /// A client must send a request's whole head within this time, or its connection is closed (10 s).
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_ms: u64,
    /// A request body that sends nothing for this long is abandoned (408; default 10 s).
    #[serde(default = "default_body_timeout")]
    pub body_read_timeout_ms: u64,
    /// At most this many connections at once; more wait in the listen backlog (default 512, kept below
    /// the file-descriptor limit).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// After Ctrl-C or SIGTERM, connections still open after this long are dropped (default 10 s).
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_ms: u64,
    /// At most this many deliveries in flight at once, all destinations together (default 32).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// At most this many deliveries in flight to one destination or notification endpoint, unless the
    /// destination sets its own `max_in_flight` (default 4).
    #[serde(default = "default_destination_max_in_flight")]
    pub destination_max_in_flight: usize,
    /// How long one notification attempt may take before it counts as failed and is retried (default 10 s).
    #[serde(default = "default_timeout")]
    pub notify_timeout_ms: u64,
    /// Threads serving requests (the runtime's workers). Default: on SQLite one fewer than the machine's
    /// cores (at least one), leaving a core to the group commit's committer and SQLite's writer thread; on
    /// PostgreSQL one a core.
    #[serde(default)]
    pub workers: Option<usize>,
}

/// `[server.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// CA certificates (PEM) whose client certificates are accepted; set it to require mutual TLS.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            database_url: default_database(),
            base_url: default_base_url(),
            max_upload_bytes: default_max_upload(),
            outbox_poll_ms: default_poll(),
            max_attempts: 0,
            retry_base_ms: default_backoff(),
            retry_max_delay_ms: default_max_delay(),
            retry_window_ms: default_retry_window(),
            dead_letter_probe_ms: default_probe(),
            claim_lease_ms: default_lease(),
            tls: None,
            max_json_bytes: default_max_json(),
            max_header_bytes: default_max_header(),
            header_read_timeout_ms: default_header_timeout(),
            body_read_timeout_ms: default_body_timeout(),
            max_connections: default_max_connections(),
            shutdown_grace_ms: default_shutdown_grace(),
            max_in_flight: default_max_in_flight(),
            destination_max_in_flight: default_destination_max_in_flight(),
            notify_timeout_ms: default_timeout(),
            workers: None,
        }
    }
}

fn default_max_in_flight() -> usize {
    32
}
fn default_destination_max_in_flight() -> usize {
    4
}
fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_database() -> String {
    "sqlite://var/onedoor.db".to_owned()
}
fn default_base_url() -> String {
    "http://127.0.0.1:8080".to_owned()
}
fn default_max_upload() -> usize {
    64 * 1024 * 1024
}
fn default_max_json() -> usize {
    1024 * 1024
}
fn default_max_header() -> usize {
    64 * 1024
}
fn default_header_timeout() -> u64 {
    10_000
}
fn default_body_timeout() -> u64 {
    10_000
}
fn default_max_connections() -> usize {
    512
}
fn default_shutdown_grace() -> u64 {
    10_000
}
fn default_poll() -> u64 {
    200
}
fn default_max_delay() -> u64 {
    15 * 60 * 1000
}
fn default_retry_window() -> u64 {
    24 * 60 * 60 * 1000
}
fn default_probe() -> u64 {
    60 * 1000
}
fn default_backoff() -> u64 {
    500
}
fn default_lease() -> u64 {
    30_000
}

/// `[consent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentSettings {
    /// Consent resources loaded at start-up (more arrive through `/fhir/Consent`).
    #[serde(default)]
    pub consents: Option<PathBuf>,
    /// Legal bases (TOML).
    #[serde(default)]
    pub bases: Option<PathBuf>,
    /// The audit and disclosure logs.
    #[serde(default = "default_audit")]
    pub audit_dir: PathBuf,
    /// v3 RoleCode relationships whose holder may consent for a minor (default: parents and legal
    /// guardians, [`crate::consent::codes::CUSTODIAL_ROLES`]).
    #[serde(default = "default_custodial_roles")]
    pub custodial_roles: Vec<String>,
    /// The age from which a person must consent themselves (default 18, FERPA's).
    #[serde(default = "default_age_of_majority")]
    pub age_of_majority: u32,
    /// Another age of consent for consents under a regime (a `Consent.policyRule`/`policy` code, such as
    /// `STATE = 12` for a state's minor-consent rule for health data); the highest that applies counts.
    #[serde(default)]
    pub age_of_consent: BTreeMap<String, u32>,
}

impl Default for ConsentSettings {
    fn default() -> Self {
        Self {
            consents: None,
            bases: None,
            audit_dir: default_audit(),
            custodial_roles: default_custodial_roles(),
            age_of_majority: default_age_of_majority(),
            age_of_consent: BTreeMap::new(),
        }
    }
}

impl ConsentSettings {
    /// The decision policy these settings give.
    pub fn policy(&self) -> crate::consent::decision::Policy {
        crate::consent::decision::Policy {
            custodial_roles: self.custodial_roles.clone(),
            age_of_majority: self.age_of_majority,
            age_by_policy: self.age_of_consent.clone(),
            custodian_for: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The consent decision policy: `[consent]`, and the organizations each partner's organization holds
    /// records for as custodian (`[partners.X] custodian_for`).
    pub fn consent_policy(&self) -> crate::consent::decision::Policy {
        let mut policy = self.consent.policy();
        for partner in self.partners.values() {
            policy
                .custodian_for
                .entry(partner.org.clone())
                .or_default()
                .extend(partner.custodian_for.iter().cloned());
        }
        policy.custodian_for.retain(|_, held| !held.is_empty());
        policy
    }
}

fn default_custodial_roles() -> Vec<String> {
    crate::consent::decision::Policy::default().custodial_roles
}

fn default_age_of_majority() -> u32 {
    crate::consent::decision::Policy::default().age_of_majority
}

fn default_audit() -> PathBuf {
    PathBuf::from("var/audit")
}

/// `[sources.NAME]`: one system's export and how to convert it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The mapping's name.
    pub mapping: String,
    /// The export (file or folder), for `convert --source`.
    #[serde(default)]
    pub input: Option<PathBuf>,
    /// The roster, for referral mappings.
    #[serde(default)]
    pub roster: Option<PathBuf>,
    /// Overrides the mapping's source system URI.
    #[serde(default)]
    pub source_system: Option<String>,
    /// Output format.
    #[serde(default)]
    pub format: OutputFormat,
    /// The organization this source speaks for (`system|value`), for consent and access.
    #[serde(default)]
    pub org: Option<String>,
}

/// `[destinations.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// How it receives: a kind of `delivery::registry` (`fhir-rest`, `webhook`, `file`, `hmis-csv`).
    pub kind: String,
    /// URL (fhir-rest, webhook) or file path (file).
    pub endpoint: String,
    /// The organization that receives (`system|value`): the consent gate decides for it.
    pub org: String,
    /// Purpose of use of the disclosure.
    #[serde(default = "default_purpose")]
    pub purpose: String,
    /// Environment variable holding a bearer token (never written in the file).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Extra CA certificate (PEM) to trust.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM, one file) for mutual TLS.
    #[serde(default)]
    pub client_identity: Option<PathBuf>,
    /// How long one delivery attempt may take, in milliseconds, before it counts as failed and is retried
    /// (default 10 s).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// What a `file` destination writes: FHIR NDJSON (`fhir`, the default) or an HMIS CSV folder
    /// (`hmis-csv`; the endpoint is the folder an HMIS imports from).
    #[serde(default)]
    pub format: DestinationFormat,
    /// At most this many deliveries to it at once (default: `server.destination_max_in_flight`).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
}

impl Destination {
    /// A destination the CLI writes to itself (its `--output`): `kind` for organization `org`.
    pub fn local(kind: &str, org: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            endpoint: String::new(),
            org: org.to_owned(),
            purpose: default_purpose(),
            token_env: None,
            ca_file: None,
            client_identity: None,
            timeout_ms: default_timeout(),
            format: DestinationFormat::default(),
            max_in_flight: None,
        }
    }
}

/// The encoding a destination receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationFormat {
    /// FHIR R4 JSON.
    #[default]
    Fhir,
    /// HUD HMIS CSV FY2024.
    HmisCsv,
}

fn default_purpose() -> String {
    "TREAT".to_owned()
}
fn default_timeout() -> u64 {
    10_000
}

/// `[[routes]]`: referrals whose performer is `performer` go to `destination`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The performer organization (`system|value`), as in the agency code table.
    #[serde(default)]
    pub performer: Option<String>,
    /// Or: the SDOH need category code.
    #[serde(default)]
    pub need: Option<String>,
    /// With `need`: directory categories (HSDS taxonomy terms or categories) that serve it. A referral with
    /// no performer gets the directory's best HealthcareService for the person's area as performer, and
    /// goes to the destination of that service's organization (or `destination`).
    #[serde(default)]
    pub directory_category: Vec<String>,
    /// The destination's name.
    pub destination: String,
}

/// `[partners.NAME]`: a system that calls the gateway, acting for one organization.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    /// The organization it acts for (`system|value`).
    pub org: String,
    /// Where status changes of the referrals it sent are notified (rest-hook, id-only): the shortcut for
    /// one FHIR Subscription (`notify-url-<partner>`), created or updated at start-up without a handshake.
    #[serde(default)]
    pub notify_url: Option<String>,
    /// Mutual TLS: the client certificate subject (common name, or the whole `CN=..., O=...`) bound to it.
    #[serde(default)]
    pub cert_subject: Option<String>,
    /// Mutual TLS: a subject alternative name (DNS name, URI, e-mail, IP) of the certificate bound to it.
    #[serde(default)]
    pub cert_san: Option<String>,
    /// SMART Backend Services: its public keys, a JWKS (`{"keys": [...]}`) as a TOML table or JSON text.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// SMART Backend Services: or a file holding its JWKS (read at each token request).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// SMART Backend Services: the scopes it may be granted (`system/ServiceRequest.write`, `system/*.read`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The sources it may ingest into (`POST /ingest/{source}`); each source's `org` must be the partner's.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Organizations (`system|value`) besides its own whose consents it records as custodian (a district's
    /// schools): a Consent it writes must name one of them, or its own, in `Consent.organization`.
    #[serde(default)]
    pub custodian_for: Vec<String>,
}

/// Problems in a configuration file, all of them.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// Read, override from the environment, and check a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, std::env::vars())
}

/// [`load`] with the environment given.
pub fn load_with_env(
    path: &Path,
    env: impl Iterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(vec![format!("{shown}: cannot read: {e}")]))?;
    let mut value: Value = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| crate::mapping::model::line_of(&text, s.start))
            .unwrap_or(1);
        ConfigError(vec![format!("{shown}:{line}: {}", e.message())])
    })?;
    apply_env(&mut value, env);
    let mut problems = unknown_keys(&value, &shown);
    if !problems.is_empty() {
        return Err(ConfigError(problems));
    }
    let config: Config = value
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError(vec![format!("{shown}: {}", e.message())]))?;
    problems.extend(check(&config, &shown));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError(problems))
    }
}

fn apply_env(value: &mut Value, env: impl Iterator<Item = (String, String)>) {
    for (key, raw) in env {
        let Some(path) = key.strip_prefix("ONEDOOR_").filter(|p| p.contains("__")) else {
            continue;
        };
        let parts: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        set_path(value, &parts, &raw);
    }
}

fn set_path(value: &mut Value, parts: &[String], raw: &str) {
    let Some(table) = value.as_table_mut() else {
        return;
    };
    let key = table
        .keys()
        .find(|k| k.replace('-', "_") == parts[0])
        .cloned()
        .unwrap_or_else(|| parts[0].clone());
    if parts.len() == 1 {
        let parsed = raw
            .parse::<i64>()
            .map(Value::Integer)
            .or_else(|_| raw.parse::<bool>().map(Value::Boolean))
            .unwrap_or_else(|_| Value::String(raw.to_owned()));
        table.insert(key, parsed);
        return;
    }
    let child = table
        .entry(key)
        .or_insert_with(|| Value::Table(Default::default()));
    set_path(child, &parts[1..], raw);
}

const TOP: &[&str] = &[
    "gateway",
    "server",
    "consent",
    "sources",
    "destinations",
    "routes",
    "partners",
];
const GATEWAY: &[&str] = &["mappings", "history_salt"];
const SERVER: &[&str] = &[
    "listen",
    "database_url",
    "base_url",
    "max_upload_bytes",
    "outbox_poll_ms",
    "max_attempts",
    "retry_base_ms",
    "retry_max_delay_ms",
    "retry_window_ms",
    "dead_letter_probe_ms",
    "claim_lease_ms",
    "tls",
    "max_json_bytes",
    "max_header_bytes",
    "header_read_timeout_ms",
    "body_read_timeout_ms",
    "max_connections",
    "shutdown_grace_ms",
    "max_in_flight",
    "destination_max_in_flight",
    "notify_timeout_ms",
    "workers",
];
const SERVER_TLS: &[&str] = &["cert", "key", "client_ca"];
const CONSENT: &[&str] = &[
    "consents",
    "bases",
    "audit_dir",
    "custodial_roles",
    "age_of_majority",
    "age_of_consent",
];
const SOURCE: &[&str] = &[
    "mapping",
    "input",
    "roster",
    "source_system",
    "format",
    "org",
];
const DESTINATION: &[&str] = &[
    "kind",
    "endpoint",
    "org",
    "purpose",
    "token_env",
    "ca_file",
    "client_identity",
    "timeout_ms",
    "format",
    "max_in_flight",
];
const ROUTE: &[&str] = &["performer", "need", "directory_category", "destination"];
const PARTNER: &[&str] = &[
    "org",
    "notify_url",
    "sources",
    "custodian_for",
    "cert_subject",
    "cert_san",
    "jwks",
    "jwks_file",
    "scopes",
];

/// Every unknown key, with its dotted path.
fn unknown_keys(value: &Value, shown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |table: Option<&toml::Table>, allowed: &[&str], at: &str| {
        for key in table.into_iter().flat_map(|t| t.keys()) {
            if !allowed.contains(&key.as_str()) {
                problems.push(format!(
                    "{shown}: {at}{key}: unknown key (expected one of: {})",
                    allowed.join(", ")
                ));
            }
        }
    };
    check(value.as_table(), TOP, "");
    check(
        value.get("gateway").and_then(Value::as_table),
        GATEWAY,
        "gateway.",
    );
    check(
        value.get("server").and_then(Value::as_table),
        SERVER,
        "server.",
    );
    check(
        value
            .get("server")
            .and_then(|s| s.get("tls"))
            .and_then(Value::as_table),
        SERVER_TLS,
        "server.tls.",
    );
    check(
        value.get("consent").and_then(Value::as_table),
        CONSENT,
        "consent.",
    );
    for (section, allowed) in [
        ("sources", SOURCE),
        ("destinations", DESTINATION),
        ("partners", PARTNER),
    ] {
        for (name, entry) in value
            .get(section)
            .and_then(Value::as_table)
            .into_iter()
            .flatten()
        {
            check(entry.as_table(), allowed, &format!("{section}.{name}."));
        }
    }
    for (index, route) in value
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        check(route.as_table(), ROUTE, &format!("routes[{index}]."));
    }
    problems
}

fn check(config: &Config, shown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if config.server.workers == Some(0) {
        problems.push(format!(
            "{shown}: server.workers: 0 (expected at least 1 thread, or no value for the default)"
        ));
    }
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
        for (key, path) in [("input", &source.input), ("roster", &source.roster)] {
            if let Some(path) = path.as_ref().filter(|p| !p.exists()) {
                problems.push(format!(
                    "{shown}: sources.{name}.{key}: {} does not exist",
                    path.display()
                ));
            }
        }
    }
    for (name, destination) in &config.destinations {
        if let Some(problem) = crate::delivery::registry::check(destination) {
            problems.push(format!("{shown}: destinations.{name}.{problem}"));
        }
        if let Err(not) = OrgRef::parse(&destination.org) {
            problems.push(format!("{shown}: destinations.{name}.org: {not}"));
        }
        if let Some(var) = &destination.token_env
            && std::env::var_os(var).is_none()
        {
            problems.push(format!(
                "{shown}: destinations.{name}.token_env: the environment variable {var} is not set"
            ));
        }
    }
    for (index, route) in config.routes.iter().enumerate() {
        if !config.destinations.contains_key(&route.destination) {
            problems.push(format!(
                "{shown}: routes[{index}].destination: no destination named '{}'",
                route.destination
            ));
        }
        if !route.directory_category.is_empty() && route.need.is_none() {
            problems.push(format!(
                "{shown}: routes[{index}].directory_category: give the need it serves (need = \"...\")"
            ));
        }
        if route.performer.is_none() && route.need.is_none() {
            problems.push(format!(
                "{shown}: routes[{index}]: give a performer or a need"
            ));
        }
    }
    problems.extend(check_partner_sources(config, shown));
    problems.extend(
        crate::consent::decision::check_policy(&config.consent.policy())
            .into_iter()
            .map(|p| format!("{shown}: consent.{p}")),
    );
    problems.extend(crate::http::smart::check_partners(config, shown));
    if !config.server.database_url.starts_with("sqlite:")
        && !config.server.database_url.starts_with("postgres")
    {
        problems.push(format!(
            "{shown}: server.database_url: expected sqlite://PATH or postgres://..."
        ));
    }
    problems
}

/// A partner may ingest only into sources that exist and whose organization is its own.
fn check_partner_sources(config: &Config, shown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, partner) in &config.partners {
        for source in &partner.sources {
            match config.sources.get(source) {
                None => problems.push(format!(
                    "{shown}: partners.{name}.sources: no source named '{source}'"
                )),
                Some(s) if s.org.as_deref().is_some_and(|org| org != partner.org) => {
                    problems.push(format!(
                        "{shown}: partners.{name}.sources: '{source}' holds the records of {}, not of the partner's organization {}",
                        s.org.as_deref().unwrap_or_default(),
                        partner.org
                    ))
                }
                Some(_) => {}
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn no_worker_threads_is_refused() {
        let file = write("[server]\nworkers = 0\n");
        let err = load_with_env(file.path(), std::iter::empty())
            .unwrap_err()
            .0;
        assert!(
            err.iter()
                .any(|e| e.contains("server.workers: 0 (expected at least 1 thread")),
            "{err:?}"
        );
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_path() {
        let file = write(
            "[server]\nlisen = 1\n[destinations.a]\nkind = \"file\"\nendpoint = \"x\"\norg = \"s|v\"\ncolour = 1\n[[routes]]\ndestination = \"a\"\nweight = 2\n",
        );
        let err = load_with_env(file.path(), std::iter::empty())
            .unwrap_err()
            .0;
        assert!(err.iter().any(|e| e.ends_with("server.lisen: unknown key (expected one of: listen, database_url, base_url, max_upload_bytes, outbox_poll_ms, max_attempts, retry_base_ms, retry_max_delay_ms, retry_window_ms, dead_letter_probe_ms, claim_lease_ms, tls, max_json_bytes, max_header_bytes, header_read_timeout_ms, body_read_timeout_ms, max_connections, shutdown_grace_ms, max_in_flight, destination_max_in_flight, notify_timeout_ms, workers)")), "{err:?}");
        assert!(
            err.iter()
                .any(|e| e.contains("destinations.a.colour: unknown key")),
            "{err:?}"
        );
        assert!(
            err.iter()
                .any(|e| e.contains("routes[0].weight: unknown key")),
            "{err:?}"
        );
    }

    #[test]
    fn a_partner_jwks_without_a_key_that_can_verify_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p256 = r#"{"kty": "EC", "kid": "p256", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let good = include_str!("http/testdata/jwks.json");
        let files = [
            ("only-p256.json", format!(r#"{{"keys": [{p256}]}}"#)),
            (
                "mixed.json",
                good.replace(r#""keys": ["#, &format!(r#""keys": [{p256}, "#)),
            ),
            ("broken.json", "{\"keys\": [".to_owned()),
        ];
        for (name, text) in &files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let partner = |name: &str, file: &str| {
            format!(
                "[partners.{name}]\norg = \"s|{name}\"\njwks_file = \"{}\"\nscopes = [\"system/*.read\"]\n",
                dir.path().join(file).display()
            )
        };
        let text = ["only-p256", "mixed", "broken", "missing"]
            .iter()
            .map(|name| partner(name, &format!("{name}.json")))
            .collect::<String>();
        let file = write(&text);
        let err = load_with_env(file.path(), std::iter::empty())
            .unwrap_err()
            .0;
        let about = |name: &str| {
            err.iter()
                .filter(|e| e.contains(&format!("partners.{name}.jwks_file")))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(about("only-p256").len(), 1, "{err:?}");
        assert!(about("only-p256")[0].ends_with("no key that can verify an RS384 or ES384 assertion (key 0 'p256': a P-256 key (ES384 needs P-384))"), "{err:?}");
        assert!(
            about("mixed").is_empty(),
            "a JWKS with a usable key besides: {err:?}"
        );
        assert!(about("broken")[0].contains("not a JWKS"), "{err:?}");
        assert!(about("missing")[0].ends_with("does not exist"), "{err:?}");
    }

    #[test]
    fn environment_overrides_values() {
        let file = write(
            "[gateway]\nmappings = \".\"\n[destinations.food-bank]\nkind = \"webhook\"\nendpoint = \"http://a\"\norg = \"s|v\"\n",
        );
        let env = vec![
            (
                "ONEDOOR_SERVER__LISTEN".to_owned(),
                "0.0.0.0:9999".to_owned(),
            ),
            (
                "ONEDOOR_DESTINATIONS__FOOD_BANK__ENDPOINT".to_owned(),
                "http://b".to_owned(),
            ),
        ];
        let config = load_with_env(file.path(), env.into_iter()).unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:9999");
        assert_eq!(config.destinations["food-bank"].endpoint, "http://b");
    }

    #[test]
    fn consent_policy_is_read_with_todays_defaults_and_checked() {
        let file = write("[gateway]\nmappings = \".\"\n");
        let config = load_with_env(file.path(), std::iter::empty()).unwrap();
        let policy = config.consent_policy();
        let defaults = crate::consent::decision::Policy::default();
        assert_eq!(policy.custodial_roles, defaults.custodial_roles);
        assert_eq!(policy.age_of_majority, 18);
        assert!(policy.age_by_policy.is_empty() && policy.custodian_for.is_empty());

        let file = write(
            "[gateway]\nmappings = \".\"\n[consent]\ncustodial_roles = [\"PRN\", \"GUARD\", \"PRNFOST\"]\nage_of_majority = 18\n[consent.age_of_consent]\nSTATE = 12\n[partners.district]\norg = \"u|d\"\ncustodian_for = [\"u|s\"]\n",
        );
        let config = load_with_env(file.path(), std::iter::empty()).unwrap();
        let policy = config.consent_policy();
        assert_eq!(policy.custodial_roles, ["PRN", "GUARD", "PRNFOST"]);
        assert_eq!(policy.age_by_policy.get("STATE"), Some(&12));
        assert_eq!(
            policy.custodian_for.get("u|d"),
            Some(&vec!["u|s".to_owned()])
        );

        let file = write(
            "[gateway]\nmappings = \".\"\n[consent]\ncustodial_roles = [\"prn\"]\nage_of_majority = 0\n[consent.age_of_consent]\nTEXAS = 40\n",
        );
        let err = load_with_env(file.path(), std::iter::empty())
            .unwrap_err()
            .0;
        for wanted in [
            "consent.custodial_roles: 'prn' is not a v3 RoleCode personal relationship",
            "consent.age_of_majority: 0 is not an age from 1 to 25",
            "consent.age_of_consent.TEXAS: not a consent policy code",
            "consent.age_of_consent.TEXAS: 40 is not an age from 1 to 25",
        ] {
            assert!(err.iter().any(|e| e.contains(wanted)), "{wanted}: {err:?}");
        }
        let file = write("[gateway]\nmappings = \".\"\n[consent]\nage_limit = 3\n");
        let err = load_with_env(file.path(), std::iter::empty())
            .unwrap_err()
            .0;
        assert!(
            err.iter()
                .any(|e| e.contains("consent.age_limit: unknown key")),
            "{err:?}"
        );
    }
}
