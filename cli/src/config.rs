//! The node's configuration: `gatehouse.toml` in the data directory (or
//! the file `--config` names, such as `/etc/gatehouse/gatehouse.toml` for
//! the service), with `node run`'s flags over it and the defaults under
//! both. `gatehouse config show` prints the result with where each value
//! came from.
//!
//! ```toml
//! [network]
//! listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
//! bootstrap = ["/dns4/node.example.nhs.uk/tcp/4001/p2p/12D3KooW..."]
//! mdns = true
//! relay = []
//! relay_server = true
//! reconcile_secs = 60
//!
//! [web]
//! enabled = true
//! listen = "127.0.0.1:8480"
//! access = "open"            # or "staff"
//! tls_cert = "/etc/gatehouse/cert.pem"
//! tls_key = "/etc/gatehouse/key.pem"
//! metrics_from_network = false  # /metrics for this machine only
//! ready_sync_within_secs = 86400 # /readyz wants a reconciliation this recent
//!
//! [log]
//! format = "text"            # or "json"
//! ```
//!
//! An unknown key or a bad value is refused with the file, line, column and
//! key, before the node starts. A relative path in the file is taken from
//! the file's folder.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use gatehouse_node::home::Home;
use gatehouse_node::net::NetConfig;
use gatehouse_node::net::blob::{BlobHours, BlobPolicy};
use gatehouse_node::web::{DEFAULT_WEB_LISTEN, WebAccess};
use libp2p::Multiaddr;
use serde::{Deserialize, Deserializer, Serialize};

use crate::UsageError;
use crate::daemon::RunArgs;

/// Name of the configuration file in the data directory.
pub const CONFIG_FILE: &str = "gatehouse.toml";

/// The port the node listens on by default, for TCP and for QUIC, so a
/// site's firewall is opened once (as 4001 is for IPFS nodes).
pub const DEFAULT_PORT: u16 = 4001;

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A multiaddress read from the file: a bad one is an error at its place.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Addr(Multiaddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Multiaddr::from_str(&s)
            .map(Addr)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a multiaddress: {e}")))
    }
}

/// A bandwidth limit: bytes a second, written with its unit as people
/// write link speeds: `256kbit`, `2Mbit`, `32KiB`, `1MB` (`/s` may follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub NonZeroU64);

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let text = text.strip_suffix("/s").unwrap_or(text).trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().map_err(|_| {
            format!("{s:?} is not a rate: write a number and a unit, as 256kbit or 32KiB")
        })?;
        // Bits for the `bit` units (link speeds), bytes otherwise.
        let per = match unit.trim() {
            "bit" | "bps" => 1.0 / 8.0,
            "kbit" | "kbps" => 1_000.0 / 8.0,
            "Mbit" | "Mbps" => 1_000_000.0 / 8.0,
            "Gbit" | "Gbps" => 1_000_000_000.0 / 8.0,
            "B" => 1.0,
            "kB" | "KB" => 1_000.0,
            "KiB" => 1_024.0,
            "MB" => 1_000_000.0,
            "MiB" => 1_048_576.0,
            "" => {
                return Err(format!(
                    "{s:?} has no unit: write 256kbit, 32KiB, 1MB and so on"
                ));
            }
            other => {
                return Err(format!(
                    "{s:?}: unknown unit {other:?} (bit, kbit, Mbit, Gbit, B, kB, KiB, MB, MiB)"
                ));
            }
        };
        let bytes = (number * per).round();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bytes = if (1.0..1e15).contains(&bytes) {
            bytes as u64
        } else {
            0
        };
        NonZeroU64::new(bytes)
            .map(Rate)
            .ok_or_else(|| format!("{s:?}: a rate must be at least one byte a second"))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.get();
        write!(f, "{bytes} B/s")?;
        #[allow(clippy::cast_precision_loss)]
        let kbit = bytes as f64 * 8.0 / 1_000.0;
        if kbit >= 1_000.0 {
            write!(f, " ({:.1} Mbit/s)", kbit / 1_000.0)
        } else {
            write!(f, " ({kbit:.0} kbit/s)")
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A value the file gives as text, read by its `FromStr`.
#[derive(Debug, Clone, Copy)]
struct Text<T>(T);

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Text<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Text).map_err(serde::de::Error::custom)
    }
}

/// Who may read the web page, as written in the file.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Access {
    Open,
    Staff,
}

/// The log format, as written in the file.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    network: NetworkSection,
    #[serde(default)]
    web: WebSection,
    #[serde(default)]
    log: LogSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkSection {
    listen: Option<Vec<Addr>>,
    bootstrap: Option<Vec<Addr>>,
    mdns: Option<bool>,
    relay: Option<Vec<Addr>>,
    relay_server: Option<bool>,
    reconcile_secs: Option<NonZeroU64>,
    max_upload_rate: Option<Rate>,
    max_download_rate: Option<Rate>,
    files: Option<Text<BlobPolicy>>,
    file_hours: Option<Text<BlobHours>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebSection {
    enabled: Option<bool>,
    listen: Option<SocketAddr>,
    access: Option<Access>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    metrics_from_network: Option<bool>,
    ready_sync_within_secs: Option<NonZeroU64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    format: Option<LogFormat>,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Nobody set it.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// A flag of the command.
    Flag,
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Flag => f.write_str("command line"),
        }
    }
}

/// One setting's value and where it came from.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    /// The value in force.
    pub value: T,
    /// Where it came from.
    pub from: Source,
}

/// The configuration a node runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file read, if one was.
    pub file: Option<PathBuf>,
    /// Addresses to listen on.
    pub listen: Setting<Vec<Multiaddr>>,
    /// Peers dialled at start and kept connected.
    pub bootstrap: Setting<Vec<Multiaddr>>,
    /// Whether peers on the local network are found with mDNS.
    pub mdns: Setting<bool>,
    /// Relays to listen through.
    pub relay: Setting<Vec<Multiaddr>>,
    /// Whether this node relays for other admitted nodes.
    pub relay_server: Setting<bool>,
    /// Seconds between reconciliations with each peer.
    pub reconcile_secs: Setting<u64>,
    /// The most sent to all peers together, if limited.
    pub max_upload_rate: Setting<Option<Rate>>,
    /// The most taken in from all peers together, if limited.
    pub max_download_rate: Setting<Option<Rate>>,
    /// Which files items carry are fetched without being asked.
    pub files: Setting<BlobPolicy>,
    /// When they are fetched without being asked, if not at any time.
    pub file_hours: Setting<Option<BlobHours>>,
    /// Whether the web page and API are served.
    pub web: Setting<bool>,
    /// Where the web page and API are served.
    pub web_listen: Setting<SocketAddr>,
    /// Who may read them.
    pub web_access: Setting<WebAccess>,
    /// The TLS certificate and key files, if the page is served over TLS.
    pub tls: Setting<Option<(PathBuf, PathBuf)>>,
    /// `text` or `json`.
    pub log_format: Setting<String>,
    /// Whether `/metrics` answers clients beyond this machine.
    pub metrics_from_network: Setting<bool>,
    /// How recent a reconciliation `/readyz` asks for, in seconds.
    pub ready_sync_within_secs: Setting<u64>,
}

/// The addresses listened on when none are configured: every interface,
/// TCP and QUIC, on [`DEFAULT_PORT`].
pub fn default_listen() -> Vec<Multiaddr> {
    [
        format!("/ip4/0.0.0.0/tcp/{DEFAULT_PORT}"),
        format!("/ip4/0.0.0.0/udp/{DEFAULT_PORT}/quic-v1"),
    ]
    .iter()
    .filter_map(|a| a.parse().ok())
    .collect()
}

/// Reads the configuration file: `explicit` (which must exist), else the
/// data directory's `gatehouse.toml` if there is one.
fn read_file(
    home: &Home,
    explicit: Option<&Path>,
) -> anyhow::Result<Option<(PathBuf, FileConfig)>> {
    let Some((path, text)) = file_text(home, explicit)? else {
        return Ok(None);
    };
    let parsed = parse(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    Ok(Some((path, parsed)))
}

/// The settings file a backup carries: `explicit`, else the data
/// directory's `gatehouse.toml` if there is one. It is carried as written,
/// and checked again when the restored node runs.
pub fn for_backup(
    home: &Home,
    explicit: Option<&Path>,
) -> anyhow::Result<Option<gatehouse_node::backup::Settings>> {
    let Some((path, text)) = file_text(home, explicit)? else {
        return Ok(None);
    };
    Ok(Some(gatehouse_node::backup::Settings {
        path: std::path::absolute(&path)?,
        text,
    }))
}

/// The configuration file's path and text: `explicit`, else the data
/// directory's `gatehouse.toml` if there is one.
fn file_text(home: &Home, explicit: Option<&Path>) -> anyhow::Result<Option<(PathBuf, String)>> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = home.root().join(CONFIG_FILE);
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    let text = read_text(&path).map_err(|e| {
        UsageError(format!(
            "cannot read the configuration {}: {e}",
            path.display()
        ))
    })?;
    Ok(Some((path, text)))
}

fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::other(format!(
            "over the limit of {MAX_CONFIG_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// Parses a configuration file's text. The error names the line, column
/// and key.
fn parse(text: &str) -> Result<FileConfig, String> {
    let parsed: FileConfig = toml::from_str(text).map_err(|e| describe(text, &e))?;
    if parsed.web.tls_cert.is_some() != parsed.web.tls_key.is_some() {
        let (key, other) = if parsed.web.tls_cert.is_some() {
            ("tls_cert", "tls_key")
        } else {
            ("tls_key", "tls_cert")
        };
        let line = line_of(text, key).map_or(String::new(), |l| format!("line {l}: "));
        return Err(format!(
            "{line}web.{key} needs web.{other}: the page is served over TLS with both or neither"
        ));
    }
    Ok(parsed)
}

/// A TOML error as one line: where, then what.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            let key = text
                .lines()
                .nth(line - 1)
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_string())
                .filter(|k| !k.is_empty() && !k.starts_with('['));
            match key {
                Some(key) => format!("line {line}, column {column}, key `{key}`: {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}

/// The first line that sets `key`.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        .map(|i| i + 1)
}

/// Picks the flag's value, else the file's, else the default.
fn pick<T>(flag: Option<T>, file: Option<T>, path: Option<&Path>, default: T) -> Setting<T> {
    match (flag, file) {
        (Some(value), _) => Setting {
            value,
            from: Source::Flag,
        },
        (None, Some(value)) => Setting {
            value,
            from: path.map_or(Source::Default, |p| Source::File(p.to_path_buf())),
        },
        (None, None) => Setting {
            value: default,
            from: Source::Default,
        },
    }
}

fn addrs(list: Option<Vec<Addr>>) -> Option<Vec<Multiaddr>> {
    list.map(|l| l.into_iter().map(|a| a.0).collect())
}

/// A list flag counts when given at least once.
fn given<T>(list: &[T]) -> Option<Vec<T>>
where
    T: Clone,
{
    (!list.is_empty()).then(|| list.to_vec())
}

impl Config {
    /// The configuration `args` and the file give, over the defaults.
    pub fn resolve(home: &Home, args: &RunArgs) -> anyhow::Result<Self> {
        let (path, file) = match read_file(home, args.config.as_deref())? {
            Some((p, f)) => (Some(p), f),
            None => (None, FileConfig::default()),
        };
        let at = path.as_deref();
        let n = file.network;
        let w = file.web;
        let web_listen = pick(
            args.web_listen,
            w.listen,
            at,
            DEFAULT_WEB_LISTEN
                .parse()
                .map_err(|e| anyhow::anyhow!("the default web address: {e}"))?,
        );
        let web_access = match (args.web_access.as_deref(), w.access) {
            (Some(a), _) => Setting {
                value: a.parse().map_err(UsageError)?,
                from: Source::Flag,
            },
            (None, Some(a)) => Setting {
                value: match a {
                    Access::Open => WebAccess::Open,
                    Access::Staff => WebAccess::Staff,
                },
                from: at.map_or(Source::Default, |p| Source::File(p.to_path_buf())),
            },
            // Open on loopback, staff-only anywhere else.
            (None, None) => Setting {
                value: WebAccess::default_for(web_listen.value),
                from: Source::Default,
            },
        };
        let flag_tls = match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => Some(Some((c.clone(), k.clone()))),
            _ => None,
        };
        // A relative path in the file is taken from the file's folder.
        let beside = |p: PathBuf| match at.and_then(Path::parent) {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        };
        let file_tls = match (w.tls_cert, w.tls_key) {
            (Some(c), Some(k)) => Some(Some((beside(c), beside(k)))),
            _ => None,
        };
        let log_format = args.log_format.clone().map_or_else(
            || {
                pick(
                    None,
                    file.log.format.map(|f| match f {
                        LogFormat::Text => "text".to_string(),
                        LogFormat::Json => "json".to_string(),
                    }),
                    at,
                    "text".to_string(),
                )
            },
            |f| Setting {
                value: f,
                from: Source::Flag,
            },
        );
        Ok(Self {
            listen: pick(given(&args.listen), addrs(n.listen), at, default_listen()),
            bootstrap: pick(given(&args.bootstrap), addrs(n.bootstrap), at, Vec::new()),
            mdns: pick(args.no_mdns.then_some(false), n.mdns, at, true),
            relay: pick(given(&args.relay), addrs(n.relay), at, Vec::new()),
            relay_server: pick(
                args.no_relay_server.then_some(false),
                n.relay_server,
                at,
                true,
            ),
            reconcile_secs: pick(
                args.reconcile_secs.map(|s| s.max(1)),
                n.reconcile_secs.map(NonZeroU64::get),
                at,
                60,
            ),
            max_upload_rate: pick(
                args.max_upload_rate.map(Some),
                n.max_upload_rate.map(Some),
                at,
                None,
            ),
            max_download_rate: pick(
                args.max_download_rate.map(Some),
                n.max_download_rate.map(Some),
                at,
                None,
            ),
            files: pick(args.files, n.files.map(|t| t.0), at, BlobPolicy::All),
            file_hours: pick(
                args.file_hours.map(Some),
                n.file_hours.map(|t| Some(t.0)),
                at,
                None,
            ),
            web: pick(args.no_web.then_some(false), w.enabled, at, true),
            web_listen,
            web_access,
            tls: pick(flag_tls, file_tls, at, None),
            log_format,
            metrics_from_network: pick(None, w.metrics_from_network, at, false),
            ready_sync_within_secs: pick(
                None,
                w.ready_sync_within_secs.map(NonZeroU64::get),
                at,
                gatehouse_node::web::ops::READY_SYNC_WITHIN.as_secs(),
            ),
            file: path,
        })
    }

    /// The network configuration.
    pub fn net_config(&self) -> NetConfig {
        NetConfig {
            listen: self.listen.value.clone(),
            bootstrap: self.bootstrap.value.clone(),
            mdns: self.mdns.value,
            relays: self.relay.value.clone(),
            relay_server: self.relay_server.value,
            reconcile_every: Duration::from_secs(self.reconcile_secs.value),
            max_upload_bytes_per_sec: self.max_upload_rate.value.map(|r| r.0),
            max_download_bytes_per_sec: self.max_download_rate.value.map(|r| r.0),
            blob_policy: self.files.value,
            blob_hours: self.file_hours.value,
            ..NetConfig::default()
        }
    }

    /// Every setting as `(key, value, where it came from)`, in the file's
    /// order; a setting with no value (no TLS) is `null`.
    pub fn entries(&self) -> Vec<(&'static str, serde_json::Value, &Source)> {
        use serde_json::{Value, json};
        fn list(v: &[Multiaddr]) -> Value {
            v.iter().map(|a| Value::String(a.to_string())).collect()
        }
        let (cert, key) = match &self.tls.value {
            Some((c, k)) => (json!(c), json!(k)),
            None => (Value::Null, Value::Null),
        };
        vec![
            (
                "network.listen",
                list(&self.listen.value),
                &self.listen.from,
            ),
            (
                "network.bootstrap",
                list(&self.bootstrap.value),
                &self.bootstrap.from,
            ),
            ("network.mdns", json!(self.mdns.value), &self.mdns.from),
            ("network.relay", list(&self.relay.value), &self.relay.from),
            (
                "network.relay_server",
                json!(self.relay_server.value),
                &self.relay_server.from,
            ),
            (
                "network.reconcile_secs",
                json!(self.reconcile_secs.value),
                &self.reconcile_secs.from,
            ),
            (
                "network.max_upload_rate",
                json!(self.max_upload_rate.value.map(|r| r.to_string())),
                &self.max_upload_rate.from,
            ),
            (
                "network.max_download_rate",
                json!(self.max_download_rate.value.map(|r| r.to_string())),
                &self.max_download_rate.from,
            ),
            (
                "network.files",
                json!(self.files.value.to_string()),
                &self.files.from,
            ),
            (
                "network.file_hours",
                json!(self.file_hours.value.map(|h| h.to_string())),
                &self.file_hours.from,
            ),
            ("web.enabled", json!(self.web.value), &self.web.from),
            (
                "web.listen",
                json!(self.web_listen.value.to_string()),
                &self.web_listen.from,
            ),
            (
                "web.access",
                json!(self.web_access.value.to_string()),
                &self.web_access.from,
            ),
            ("web.tls_cert", cert, &self.tls.from),
            ("web.tls_key", key, &self.tls.from),
            (
                "web.metrics_from_network",
                json!(self.metrics_from_network.value),
                &self.metrics_from_network.from,
            ),
            (
                "web.ready_sync_within_secs",
                json!(self.ready_sync_within_secs.value),
                &self.ready_sync_within_secs.from,
            ),
            (
                "log.format",
                json!(self.log_format.value),
                &self.log_format.from,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_reads() {
        let c = parse(
            "[network]\nlisten = [\"/ip4/0.0.0.0/tcp/4001\"]\nmdns = false\nreconcile_secs = 300\n\
             [web]\nlisten = \"0.0.0.0:8480\"\naccess = \"staff\"\n[log]\nformat = \"json\"\n",
        )
        .expect("parses");
        assert_eq!(c.network.mdns, Some(false));
        assert_eq!(c.network.reconcile_secs.map(NonZeroU64::get), Some(300));
        assert!(matches!(c.web.access, Some(Access::Staff)));
        assert!(matches!(c.log.format, Some(LogFormat::Json)));
    }

    #[test]
    fn rates_read_as_link_speeds_and_sizes() {
        for (text, bytes) in [
            ("256kbit", 32_000),
            ("2Mbit/s", 250_000),
            ("32KiB", 32_768),
            ("1.5MB", 1_500_000),
            ("1MiB/s", 1_048_576),
            ("800 B", 800),
        ] {
            assert_eq!(text.parse::<Rate>().map(|r| r.0.get()), Ok(bytes), "{text}");
        }
        for bad in ["256", "fast", "0kbit", "1bit", "12 parsecs", ""] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert_eq!(
            "256kbit".parse::<Rate>().expect("rate").to_string(),
            "32000 B/s (256 kbit/s)"
        );
        let c = parse("[network]\nmax_upload_rate = \"256kbit\"\n").expect("parses");
        assert_eq!(c.network.max_upload_rate.map(|r| r.0.get()), Some(32_000));
        let err = parse("[network]\nmax_download_rate = \"lots\"\n").expect_err("refused");
        assert!(
            err.contains("line 2") && err.contains("max_download_rate"),
            "{err}"
        );
    }

    #[test]
    fn mistakes_name_their_line_and_key() {
        for (text, wanted) in [
            (
                "[network]\nmdns = true\nlisen = []\n",
                "line 3, column 1, key `lisen`",
            ),
            (
                "[network]\nreconcile_secs = 0\n",
                "line 2, column 18, key `reconcile_secs`",
            ),
            (
                "[web]\n\naccess = \"everyone\"\n",
                "line 3, column 10, key `access`",
            ),
            (
                "[network]\nlisten = [\"tcp:4001\"]\n",
                "line 2, column 10, key `listen`",
            ),
            (
                "[web]\nlisten = \"localhost\"\n",
                "line 2, column 10, key `listen`",
            ),
            ("[webb]\n", "line 1, column 2"),
            (
                "[web]\ntls_cert = \"c.pem\"\n",
                "line 2: web.tls_cert needs web.tls_key",
            ),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.starts_with(wanted), "{text:?}: {e}");
        }
    }
}
