//! `gatehouse node run`: the node daemon, and the local control socket the
//! CLI uses while it runs.
//!
//! The daemon owns the data directory (sled allows one process), so while
//! it runs every `gatehouse` command that needs the library is sent to it
//! over a Unix socket in the data directory (`node.sock`, mode 0600, so
//! only the owner can use it) as a typed op (`ops::Op`, one JSON line with
//! the control version). The daemon runs it on the library it holds,
//! announces what it stored to its peers and answers with a typed outcome
//! or error; the caller renders it as it would have had it run the op
//! itself. With no daemon, ops run on the data directory directly.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gatehouse_node::home::Home;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::web::{Limits, WebAccess, WebServer};
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::UsageError;
use crate::config::Config;
use crate::ctx::Ctx;
use crate::ops::{Op, Outcome, operate};

/// Largest control request, in bytes.
pub const MAX_CONTROL_REQUEST_BYTES: u64 = 1024 * 1024;
/// How long a control connection may take to send its request, and to
/// read its reply.
pub const CONTROL_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Control connections served at once.
pub const MAX_CONTROL_CONNECTIONS: usize = 16;
/// Name of the control socket in the data directory.
pub const SOCKET: &str = "node.sock";
/// Name of the file, in the data directory, that holds the address the
/// running node serves its web page and API on.
pub const WEB_ADDR_FILE: &str = "web.addr";

/// `gatehouse node run` options. Each one given here overrides the
/// configuration file (`gatehouse.toml` in the data directory, or
/// `--config`); `gatehouse config show` prints what is in force.
#[derive(Args, Clone, Default)]
pub struct RunArgs {
    /// Read the configuration from this file [default: gatehouse.toml in the data directory, if there is one]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen on this address (repeatable) [default: /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    /// Dial this peer at start and keep it connected (repeatable; also `gatehouse peers add`)
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Do not discover peers on the local network with mDNS
    #[arg(long)]
    pub no_mdns: bool,
    /// Listen through this relay, for a site that cannot accept inbound
    /// connections (`/ip4/.../tcp/.../p2p/RELAY_PEER_ID`; repeatable)
    #[arg(long, value_name = "MULTIADDR")]
    pub relay: Vec<Multiaddr>,
    /// Do not relay connections for other admitted nodes
    #[arg(long)]
    pub no_relay_server: bool,
    /// Seconds between reconciliations with each peer [default: 60]
    #[arg(long, value_name = "SECONDS")]
    pub reconcile_secs: Option<u64>,
    /// Send at most this much a second to all peers together, e.g. 256kbit
    /// or 32KiB [default: no limit]
    #[arg(long, value_name = "RATE")]
    pub max_upload_rate: Option<crate::config::Rate>,
    /// Take in at most this much a second from all peers together
    /// [default: no limit]
    #[arg(long, value_name = "RATE")]
    pub max_download_rate: Option<crate::config::Rate>,
    /// Which files items carry this node fetches without being asked:
    /// `all`, `on-demand` (when someone opens the item and asks), or a
    /// size such as `25M` (files up to it; larger ones on demand)
    /// [default: all]
    #[arg(long, value_name = "POLICY")]
    pub files: Option<gatehouse_node::net::blob::BlobPolicy>,
    /// Fetch files without being asked only within these hours, local
    /// time, e.g. 19:00-07:00 [default: any time]
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub file_hours: Option<gatehouse_node::net::blob::BlobHours>,
    /// Serve the web page and JSON API on this address; loopback by
    /// default, `0.0.0.0:8480` serves the site's network [default: 127.0.0.1:8480]
    #[arg(long, value_name = "ADDR")]
    pub web_listen: Option<SocketAddr>,
    /// Who may read the web page and API: `open` (anyone who can reach
    /// it) or `staff` (this node's signed-in staff only). The default is
    /// open on loopback and staff anywhere else
    #[arg(long, value_name = "ACCESS", value_parser = ["open", "staff"])]
    pub web_access: Option<String>,
    /// Serve the web page over TLS with this certificate (PEM; the chain,
    /// the server's certificate first). Needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Do not serve the web page and JSON API
    #[arg(long)]
    pub no_web: bool,
    /// Log format: text or json [default: text]
    #[arg(long, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

/// The control protocol's version. A node answers only requests of its own
/// version, and says so otherwise.
pub const CONTROL_VERSION: u32 = 2;

/// One line on the control socket, from the CLI.
#[derive(Serialize, Deserialize)]
struct ControlRequest {
    /// [`CONTROL_VERSION`] of the sender.
    version: u32,
    /// The sender's `gatehouse` version, for messages.
    gatehouse: String,
    /// What to do.
    op: Op,
}

/// One line on the control socket, from the node.
#[derive(Serialize, Deserialize)]
enum ControlReply {
    /// The op ran.
    Done(Box<Outcome>),
    /// It failed; `usage` when the caller is at fault (exit code 1).
    Failed { usage: bool, message: String },
}

/// Sends `op` to the running node, if there is one. `None`: no node runs,
/// run the op directly. A publish carries an idempotency key (one is
/// chosen when the user gave none): if the node's answer is lost, the
/// outcome is unknown, and the same key makes a retry safe.
pub fn forward(home: &Home, op: &mut Op) -> anyhow::Result<Option<Outcome>> {
    let path = home.root().join(SOCKET);
    let Ok(mut stream) = UnixStream::connect(&path) else {
        return Ok(None);
    };
    let retry_key = match op {
        Op::Publish {
            idempotency_key, ..
        } => Some(match idempotency_key {
            Some(key) => key.clone(),
            None => idempotency_key
                .insert(hex::encode(gatehouse_node::home::random_bytes::<16>()?))
                .clone(),
        }),
        _ => None,
    };
    let unknown = |e: &dyn std::fmt::Display| match &retry_key {
        Some(key) => anyhow::anyhow!(
            "{e}: the outcome is unknown, the node may or may not have published it. \
             Run the same command with --idempotency-key {key} to retry without making a second item"
        ),
        None => anyhow::anyhow!(
            "{e}: the outcome is unknown; check with `gatehouse list` before retrying"
        ),
    };
    let request = ControlRequest {
        version: CONTROL_VERSION,
        gatehouse: env!("CARGO_PKG_VERSION").to_string(),
        op: op.clone(),
    };
    let mut bytes = serde_json::to_vec(&request)?;
    bytes.push(b'\n');
    if bytes.len() as u64 > MAX_CONTROL_REQUEST_BYTES {
        anyhow::bail!(UsageError(format!(
            "this command is {} bytes, more than the running node takes ({MAX_CONTROL_REQUEST_BYTES})",
            bytes.len()
        )));
    }
    stream.write_all(&bytes)?;
    stream.flush()?;
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(0) => return Err(unknown(&"the running node closed the control connection")),
        Ok(_) => {}
        Err(e) => return Err(unknown(&format!("the control connection failed ({e})"))),
    }
    let reply: ControlReply = serde_json::from_str(&line)
        .map_err(|e| unknown(&format!("a malformed reply from the running node ({e})")))?;
    match reply {
        ControlReply::Done(outcome) => Ok(Some(*outcome)),
        ControlReply::Failed {
            usage: true,
            message,
        } => Err(UsageError(message).into()),
        ControlReply::Failed { message, .. } => Err(anyhow::anyhow!(message)),
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn"));
    // Colour only for a person at a terminal: the journal keeps plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Runs the node until Ctrl-C or SIGTERM, with the configuration `args`
/// and the file give.
pub fn run(home: Home, args: RunArgs) -> anyhow::Result<()> {
    let config = Config::resolve(&home, &args)?;
    init_tracing(&config.log_format.value);
    if let Some(file) = &config.file {
        tracing::info!(file = %file.display(), "configuration read");
    }
    let tls = match &config.tls.value {
        Some((cert, key)) => Some(
            gatehouse_node::web::tls::server_config(cert, key)
                .map_err(|e| UsageError(e.to_string()))?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let node = RunningNode::start(&home, config.net_config()).await?;
        let socket = serve_control(&home, node.clone()).await?;
        let web = if config.web.value {
            let monitoring = Monitoring {
                metrics_from_network: config.metrics_from_network.value,
                ready_sync_within: Duration::from_secs(config.ready_sync_within_secs.value),
            };
            let web = (config.web_listen.value, config.web_access.value, monitoring);
            match serve_web(&home, &node, web, tls).await {
                Ok(w) => Some(w),
                Err(e) => {
                    let _ = std::fs::remove_file(&socket);
                    node.stop().await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        // Ready once the store is open and the listeners are bound: what a
        // service manager (systemd's Type=notify) waits for.
        let bound = std::time::Instant::now();
        while node.net.status().listening.is_empty() && bound.elapsed() < LISTEN_WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let listening = node.net.status().listening;
        tracing::info!(peer_id = %node.net.status().peer_id, ?listening, "node running; Ctrl-C to stop");
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!("listening on {}", listening.join(", "))),
        ]);
        let shown = show_progress(node.net.clone());
        shutdown_signal().await;
        shown.abort();
        notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!("stopping");
        if let Some(w) = web {
            stop_web(&home, w).await;
        }
        node.stop().await;
        let _ = std::fs::remove_file(&socket);
        node.lock().settle()?;
        Ok(())
    })
}

/// On a terminal, progress bars for what takes long: envelopes a sync is
/// fetching (a first sync, a site back from weeks offline) and files
/// arriving, with rate and time left. Nothing is drawn under a service
/// manager, where stderr is the journal.
fn show_progress(net: gatehouse_node::net::NetHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return;
        }
        let bars = indicatif::MultiProgress::new();
        let style = |t: &str| {
            indicatif::ProgressStyle::with_template(t)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ")
        };
        let mut sync: Option<(indicatif::ProgressBar, u64)> = None;
        let mut files: std::collections::BTreeMap<String, indicatif::ProgressBar> =
            std::collections::BTreeMap::new();
        loop {
            let s = net.status();
            match (&sync, s.to_fetch) {
                (None, 0) => {}
                (Some((bar, _)), 0) => {
                    bar.finish_and_clear();
                    sync = None;
                }
                (None, _) => {
                    let bar = bars.add(indicatif::ProgressBar::new(s.to_fetch as u64));
                    bar.set_style(style(
                        "{msg} [{bar:30}] {pos}/{len} envelopes {per_sec} {eta} left",
                    ));
                    bar.set_message("Sync");
                    sync = Some((bar, s.envelopes_received));
                }
                (Some((bar, base)), n) => {
                    let got = s.envelopes_received.saturating_sub(*base);
                    bar.set_length(got + n as u64);
                    bar.set_position(got);
                }
            }
            let now: std::collections::BTreeSet<String> =
                s.transfers.iter().map(|t| t.hash.to_hex()).collect();
            files.retain(|hash, bar| {
                let keep = now.contains(hash);
                if !keep {
                    bar.finish_and_clear();
                }
                keep
            });
            for t in &s.transfers {
                let bar = files.entry(t.hash.to_hex()).or_insert_with(|| {
                    let b = bars.add(indicatif::ProgressBar::new(t.size));
                    b.set_style(style(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta} left",
                    ));
                    b.set_message(t.name.clone());
                    b
                });
                bar.set_position(t.have);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// How long a starting node waits for its listeners before it says it is
/// ready anyway (a relay-only site may listen on nothing of its own).
const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// Tells the service manager, when there is one (`$NOTIFY_SOCKET`).
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(false, states)
    {
        tracing::warn!("cannot tell the service manager: {e}");
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Serves the web page and API for `node` on `addr`, and records the
/// address bound in the data directory for the CLI.
/// What the monitoring routes answer, and to whom.
#[derive(Debug, Clone, Copy)]
pub struct Monitoring {
    /// `/metrics` for clients beyond this machine too.
    pub metrics_from_network: bool,
    /// How recent a reconciliation `/readyz` asks for.
    pub ready_sync_within: Duration,
}

impl Default for Monitoring {
    fn default() -> Self {
        Self {
            metrics_from_network: false,
            ready_sync_within: gatehouse_node::web::ops::READY_SYNC_WITHIN,
        }
    }
}

/// Serves the web page and API on `addr` (its address goes to `web.addr`).
pub async fn serve_web(
    home: &Home,
    node: &RunningNode,
    (addr, access, monitoring): (SocketAddr, WebAccess, Monitoring),
    tls: Option<std::sync::Arc<gatehouse_node::web::tls::ServerConfig>>,
) -> anyhow::Result<WebServer> {
    // The site's staff sign in to ask and answer, with their own keys.
    let state = node
        .web_state(home)
        .with_access(access)
        .with_metrics_from_network(monitoring.metrics_from_network)
        .with_ready_sync_within(monitoring.ready_sync_within);
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            address = %addr,
            "the web page is served without TLS beyond loopback: passwords and session \
             cookies cross the site's network in the clear; give --tls-cert and --tls-key"
        );
    }
    if access == WebAccess::Open && !addr.ip().is_loopback() {
        tracing::warn!(
            address = %addr,
            "the web page is open to anyone who can reach this address; \
             --web-access staff limits it to this node's signed-in staff"
        );
    }
    let server = WebServer::start_tls(addr, state, Limits::default(), tls)
        .await
        .map_err(|e| {
            anyhow::anyhow!(UsageError(format!(
                "{e}; choose another address with --web-listen, or use --no-web"
            )))
        })?;
    let file = home.root().join(WEB_ADDR_FILE);
    std::fs::write(&file, format!("{}\n", server.addr))
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(server)
}

/// Stops the web server and removes its address file.
pub async fn stop_web(home: &Home, server: WebServer) {
    let _ = std::fs::remove_file(home.root().join(WEB_ADDR_FILE));
    server.stop().await;
}

/// Listens on the control socket; returns its path.
pub async fn serve_control(home: &Home, node: RunningNode) -> anyhow::Result<PathBuf> {
    let path = home.root().join(SOCKET);
    if UnixStream::connect(&path).is_ok() {
        anyhow::bail!(UsageError(format!(
            "a node is already running for {}",
            home.root().display()
        )));
    }
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CONNECTIONS));
    let home = home.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            let node = node.clone();
            let home = home.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_one(stream, node, home).await {
                    tracing::warn!("control connection: {e:#}");
                }
                drop(permit);
            });
        }
    });
    Ok(path)
}

async fn serve_one(
    stream: tokio::net::UnixStream,
    node: RunningNode,
    home: Home,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A connection that sends no request in time gives its place up.
    tokio::time::timeout(
        CONTROL_REQUEST_TIMEOUT,
        tokio::io::AsyncReadExt::take(tokio::io::BufReader::new(read), MAX_CONTROL_REQUEST_BYTES)
            .read_line(&mut line),
    )
    .await
    .context("no control request within the time allowed")??;
    let reply = match serde_json::from_str::<ControlRequest>(&line) {
        Err(e) => ControlReply::Failed {
            usage: true,
            message: format!(
                "the running node (gatehouse {}) cannot read this request ({e}); \
                 use the same version of gatehouse as the node, or restart the node",
                env!("CARGO_PKG_VERSION")
            ),
        },
        Ok(request) if request.version != CONTROL_VERSION => ControlReply::Failed {
            usage: true,
            message: format!(
                "this gatehouse ({}) speaks control version {} and the running node (gatehouse {}) \
                 version {CONTROL_VERSION}; use the node's version of gatehouse, or restart the node",
                request.gatehouse,
                request.version,
                env!("CARGO_PKG_VERSION")
            ),
        },
        Ok(request) => {
            let status = node.net.status();
            let library = node.library.clone();
            let reads = node.reads();
            let (reply, fresh) = tokio::task::spawn_blocking(move || {
                let mut ctx = Ctx::shared(home, &library, reads, status);
                let result = operate(request.op, &mut ctx);
                // A read never takes the library, so it never waits for a
                // batch a peer is storing.
                let wrote = ctx.took_library();
                drop(ctx);
                let reply = match result {
                    Ok(outcome) => ControlReply::Done(Box::new(outcome)),
                    Err(e) => ControlReply::Failed {
                        usage: e.downcast_ref::<UsageError>().is_some(),
                        message: format!("{e:#}"),
                    },
                };
                let fresh = if wrote {
                    library
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take_outbox()
                } else {
                    Vec::new()
                };
                (reply, fresh)
            })
            .await?;
            node.net.announce(fresh).await;
            reply
        }
    };
    let mut bytes = serde_json::to_vec(&reply)?;
    bytes.push(b'\n');
    // A client that does not read its reply gives its place up too (the
    // operation itself may take as long as it needs).
    tokio::time::timeout(CONTROL_REQUEST_TIMEOUT, write.write_all(&bytes))
        .await
        .context("the client did not read its reply within the time allowed")??;
    Ok(())
}
