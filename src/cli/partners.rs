//! `onedoor partners add|list|revoke|rotate`: the API keys of the partners configured in
//! `[partners.NAME]`. A key is printed once and stored only as an HMAC-SHA-256 under the server secret
//! (`ONEDOOR_SECRET`, or the secret kept in the store: the CLI and every node must use the same one). A
//! partner may hold several keys; each may expire (`--expires`, `--expires-in`); `revoke` ends one key
//! (`--key-id`) or all of a partner's keys and access tokens at once; `rotate` issues a new key and keeps
//! the current ones working for a grace period (`--grace`, 24 h by default), after which they are refused
//! as expired.

use super::serve::{self, Args};
use crate::http::auth::{self, Credentials, MIN_KEY_CHARS};
use crate::store::partners::{KeyListing, NewKey};
use crate::store::{Store, now_ms};
use anyhow::{Context, bail};
use std::process::ExitCode;

/// The grace `rotate` gives the keys it replaces, unless `--grace` says otherwise.
pub const DEFAULT_GRACE: &str = "24h";

/// When a new key stops working.
#[derive(Debug, clap::Args)]
pub struct Expiry {
    /// The key expires at this time (RFC 3339, e.g. 2027-01-31T00:00:00Z).
    #[arg(long, conflicts_with = "expires_in")]
    expires: Option<String>,
    /// The key expires this long from now (e.g. 90d, 12h, 30m).
    #[arg(long)]
    expires_in: Option<String>,
}

/// `partners` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Issue a key for a partner (it may hold several); the key is printed once and stored as an HMAC.
    Add {
        /// The partner's name in the configuration (`[partners.NAME]`).
        name: String,
        /// Use this key instead of generating one (provisioning from a secret manager; at least 16
        /// characters, its first 11 are its non-secret lookup prefix).
        #[arg(long, env = "ONEDOOR_PARTNER_KEY")]
        key: Option<String>,
        #[command(flatten)]
        expiry: Expiry,
        #[command(flatten)]
        args: Args,
    },
    /// List partners' keys: id, prefix, created, expires, revoked, last used (never the key).
    List {
        /// Only this partner's keys.
        name: Option<String>,
        #[command(flatten)]
        args: Args,
    },
    /// Revoke one key (`--key-id`) or every key and access token of a partner.
    Revoke {
        /// The partner.
        name: String,
        /// Only this key (its id, as `list` shows it).
        #[arg(long)]
        key_id: Option<String>,
        #[command(flatten)]
        args: Args,
    },
    /// Issue a new key; the partner's current keys keep working until the grace period ends.
    Rotate {
        /// The partner.
        name: String,
        /// How long the current keys keep working (e.g. 24h, 7d, 0 for not at all).
        #[arg(long, default_value = DEFAULT_GRACE)]
        grace: String,
        #[command(flatten)]
        expiry: Expiry,
        #[command(flatten)]
        args: Args,
    },
}

/// Run `partners`.
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    serve::runtime()?.block_on(async {
        match command {
            Command::Add {
                name,
                key,
                expiry,
                args,
            } => add(name, key.as_deref(), expiry, args).await,
            Command::List { name, args } => list(name.as_deref(), args).await,
            Command::Revoke { name, key_id, args } => revoke(name, key_id.as_deref(), args).await,
            Command::Rotate {
                name,
                grace,
                expiry,
                args,
            } => rotate(name, grace, expiry, args).await,
        }
    })
}

/// The configured partner's organization, the store and the credentials.
async fn open(name: &str, args: &Args) -> anyhow::Result<(String, Store, Credentials)> {
    let (config, url) = serve::load(args)?;
    let org = config
        .partners
        .get(name)
        .map(|p| p.org.clone())
        .with_context(|| format!("no [partners.{name}] in the configuration"))?;
    let store = serve::connect(&url).await?;
    let credentials = Credentials::load(&store).await?;
    Ok((org, store, credentials))
}

/// A new key (generated, or the one given): (id, key).
fn key_of(given: Option<&str>) -> anyhow::Result<(String, String)> {
    match given {
        None => Ok(auth::new_key()),
        Some(key) if key.chars().count() < MIN_KEY_CHARS => {
            bail!("--key: a key needs at least {MIN_KEY_CHARS} characters")
        }
        Some(key) if key.starts_with(auth::TOKEN_PREFIX) || key.contains(char::is_whitespace) => {
            bail!(
                "--key: a key may not contain spaces or start with {}",
                auth::TOKEN_PREFIX
            )
        }
        Some(key) => Ok((auth::new_key_id(), key.to_owned())),
    }
}

async fn store_key(
    name: &str,
    given: Option<&str>,
    expiry: &Expiry,
    args: &Args,
    grace: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let expires_at = expiry_ms(expiry)?;
    let grace_ms = grace.map(duration_ms).transpose()?;
    let (org, store, credentials) = open(name, args).await?;
    let (id, key) = key_of(given)?;
    let (prefix, hash) = (auth::key_prefix(&key), credentials.hash(&key));
    let new = NewKey {
        partner: name,
        org: &org,
        id: &id,
        prefix: &prefix,
        hash: &hash,
        expires_at,
    };
    match grace_ms {
        Some(grace) => {
            let kept = store.rotate_partner_key(&new, now_ms() + grace).await?;
            eprintln!(
                "partner '{name}': new key {id}; {kept} earlier key(s) keep working until {}",
                shown(Some(now_ms() + grace))
            );
        }
        None => {
            store.add_partner_key(&new).await?;
            eprintln!(
                "partner '{name}' acts for {org}; key {id} (expires {})",
                shown(expires_at)
            );
        }
    }
    println!("{key}");
    eprintln!("the key above is shown once and stored only as an HMAC");
    Ok(ExitCode::SUCCESS)
}

async fn add(
    name: &str,
    key: Option<&str>,
    expiry: &Expiry,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    store_key(name, key, expiry, args, None).await
}

async fn rotate(name: &str, grace: &str, expiry: &Expiry, args: &Args) -> anyhow::Result<ExitCode> {
    store_key(name, None, expiry, args, Some(grace)).await
}

async fn revoke(name: &str, key_id: Option<&str>, args: &Args) -> anyhow::Result<ExitCode> {
    let (_, store, _) = open(name, args).await?;
    let revoked = store.revoke_partner_keys(name, key_id).await?;
    match key_id {
        Some(id) if revoked == 0 => {
            eprintln!("partner '{name}' has no unrevoked key {id}");
            Ok(ExitCode::from(1))
        }
        _ => {
            println!("revoked {revoked} key(s) of partner '{name}'");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list(name: Option<&str>, args: &Args) -> anyhow::Result<ExitCode> {
    let (_, url) = serve::load(args)?;
    let store = serve::connect(&url).await?;
    let keys = store.list_partner_keys(name).await?;
    println!("partner\torg\tkey id\tprefix\tcreated\texpires\trevoked\tlast used\tstatus");
    for key in &keys {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            key.partner,
            key.org,
            key.id,
            key.prefix,
            shown(Some(key.created_at)),
            shown(key.expires_at),
            shown(key.revoked_at),
            shown(key.last_used_at),
            status(key, now_ms())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn status(key: &KeyListing, now: i64) -> String {
    if key.revoked_at.is_some() {
        return "revoked".into();
    }
    let ended = |at: Option<i64>| at.is_some_and(|at| at <= now);
    if ended(key.expires_at) || ended(key.grace_until) {
        return "expired".into();
    }
    match key.grace_until {
        Some(until) => format!("rotated, valid until {}", shown(Some(until))),
        None => "active".into(),
    }
}

/// A time in ms as RFC 3339 (UTC, seconds), or `-`.
fn shown(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

fn expiry_ms(expiry: &Expiry) -> anyhow::Result<Option<i64>> {
    match (&expiry.expires, &expiry.expires_in) {
        (Some(at), _) => chrono::DateTime::parse_from_rfc3339(at)
            .map(|t| Some(t.timestamp_millis()))
            .with_context(|| format!("--expires: '{at}' is not an RFC 3339 time")),
        (None, Some(after)) => Ok(Some(now_ms() + duration_ms(after)?)),
        (None, None) => Ok(None),
    }
}

/// `90d`, `12h`, `30m`, `45s` (or `0`) in milliseconds.
pub fn duration_ms(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    if text == "0" {
        return Ok(0);
    }
    let split = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..split).unwrap_or_default(), text.get(split..));
    let unit_ms: i64 = match unit {
        Some("d") => 86_400_000,
        Some("h") => 3_600_000,
        Some("m") => 60_000,
        Some("s") => 1_000,
        _ => bail!("'{text}' is not a duration (e.g. 90d, 24h, 30m, 45s)"),
    };
    let number: i64 = number
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .with_context(|| format!("'{text}' is not a duration (e.g. 90d, 24h, 30m, 45s)"))?;
    number
        .checked_mul(unit_ms)
        .with_context(|| format!("'{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::duration_ms;

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(duration_ms("90d").unwrap(), 90 * 86_400_000);
        assert_eq!(duration_ms("24h").unwrap(), 86_400_000);
        assert_eq!(duration_ms("2s").unwrap(), 2_000);
        assert_eq!(duration_ms("0").unwrap(), 0);
        for bad in ["", "d", "-1h", "12", "1w", "1.5h", "é"] {
            assert!(duration_ms(bad).is_err(), "{bad}");
        }
    }
}
