//! `gatehouse node run`: the node daemon, and the local control socket the
//! CLI uses while it runs.
//!
//! The daemon owns the data directory (sled allows one process), so while
//! it runs every `gatehouse` command that needs the library is sent to it
//! over a Unix socket in the data directory (`node.sock`, mode 0600, so
//! only the owner can use it). The daemon parses the same arguments and
//! runs the same command code on the library it holds, then announces what
//! the command stored to its peers; the caller prints the output and exits
//! with the daemon's exit code. With no daemon, commands open the data
//! directory directly and give the same results.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser};
use gatehouse_node::home::Home;
use gatehouse_node::net::NetConfig;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::web::{DEFAULT_WEB_LISTEN, WebServer, WebState};
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::{Cli, UsageError, ctx::Ctx, execute};

/// Largest control request, in bytes.
pub const MAX_CONTROL_REQUEST_BYTES: u64 = 1024 * 1024;
/// Control connections served at once.
pub const MAX_CONTROL_CONNECTIONS: usize = 16;
/// Name of the control socket in the data directory.
pub const SOCKET: &str = "node.sock";
/// Name of the file, in the data directory, that holds the address the
/// running node serves its web page and API on.
pub const WEB_ADDR_FILE: &str = "web.addr";

/// `gatehouse node run` options.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// Listen on this address (repeatable) [default: /ip4/0.0.0.0/tcp/0 and /ip4/0.0.0.0/udp/0/quic-v1]
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
    /// Seconds between reconciliations with each peer
    #[arg(long, default_value_t = 60)]
    pub reconcile_secs: u64,
    /// Serve the web page and JSON API on this address; loopback by
    /// default, `0.0.0.0:8480` serves the site's network
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_WEB_LISTEN)]
    pub web_listen: SocketAddr,
    /// Do not serve the web page and JSON API
    #[arg(long)]
    pub no_web: bool,
    /// Log format
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl RunArgs {
    /// The network configuration these options describe.
    pub fn net_config(&self) -> NetConfig {
        let mut c = NetConfig::default();
        if !self.listen.is_empty() {
            c.listen = self.listen.clone();
        }
        c.bootstrap = self.bootstrap.clone();
        c.mdns = !self.no_mdns;
        c.relays = self.relay.clone();
        c.relay_server = !self.no_relay_server;
        c.reconcile_every = Duration::from_secs(self.reconcile_secs.max(1));
        c
    }
}

#[derive(Serialize, Deserialize)]
struct Request {
    argv: Vec<String>,
    cwd: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Reply {
    stdout: String,
    stderr: String,
    code: u8,
}

/// Sends the current command to the running node, if there is one.
/// `None`: no node runs, run the command directly. A `retry_key` is added
/// to the command as `--idempotency-key`: if the node's answer is lost, the
/// outcome is unknown, and the same key makes a retry safe.
pub fn forward(home: &Home, retry_key: Option<&str>) -> anyhow::Result<Option<anyhow::Result<()>>> {
    let path = home.root().join(SOCKET);
    let Ok(mut stream) = UnixStream::connect(&path) else {
        return Ok(None);
    };
    let argv = std::env::args_os()
        .map(|a| {
            a.into_string().map_err(|a| {
                anyhow::anyhow!(
                    "the argument {a:?} is not UTF-8 and cannot be sent to the running node"
                )
            })
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let mut argv = argv;
    if let Some(key) = retry_key {
        argv.extend(["--idempotency-key".to_string(), key.to_string()]);
    }
    let unknown = |e: &dyn std::fmt::Display| match retry_key {
        Some(key) => anyhow::anyhow!(
            "{e}: the outcome is unknown, the node may or may not have published it. \
             Run the same command with --idempotency-key {key} to retry without making a second item"
        ),
        None => anyhow::anyhow!(
            "{e}: the outcome is unknown; check with `gatehouse list` before retrying"
        ),
    };
    let request = Request {
        argv,
        cwd: std::env::current_dir().context("no current directory")?,
    };
    serde_json::to_writer(&mut stream, &request)?;
    stream.write_all(b"\n")?;
    stream.flush()?;
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(0) => return Err(unknown(&"the running node closed the control connection")),
        Ok(_) => {}
        Err(e) => return Err(unknown(&format!("the control connection failed ({e})"))),
    }
    let reply: Reply = serde_json::from_str(&line)
        .map_err(|e| unknown(&format!("a malformed reply from the running node ({e})")))?;
    std::io::stdout().write_all(reply.stdout.as_bytes())?;
    std::io::stdout().flush()?;
    if reply.code == 0 {
        return Ok(Some(Ok(())));
    }
    eprint!("{}", reply.stderr);
    std::process::exit(i32::from(reply.code));
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Runs the node until Ctrl-C or SIGTERM.
pub fn run(home: Home, args: RunArgs) -> anyhow::Result<()> {
    init_tracing(&args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let node = RunningNode::start(&home, args.net_config()).await?;
        let socket = serve_control(&home, node.clone()).await?;
        let web = if args.no_web {
            None
        } else {
            match serve_web(&home, &node, args.web_listen).await {
                Ok(w) => Some(w),
                Err(e) => {
                    let _ = std::fs::remove_file(&socket);
                    node.stop().await;
                    return Err(e);
                }
            }
        };
        tracing::info!(peer_id = %node.net.status().peer_id, "node running; Ctrl-C to stop");
        shutdown_signal().await;
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
pub async fn serve_web(
    home: &Home,
    node: &RunningNode,
    addr: SocketAddr,
) -> anyhow::Result<WebServer> {
    let state = WebState {
        library: node.library.clone(),
        net: Some(node.net.clone()),
    };
    let server = WebServer::start(addr, state).await.map_err(|e| {
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
    tokio::io::AsyncReadExt::take(tokio::io::BufReader::new(read), MAX_CONTROL_REQUEST_BYTES)
        .read_line(&mut line)
        .await?;
    let request: Request = serde_json::from_str(&line).context("malformed control request")?;
    let status = node.net.status();
    let library = node.library.clone();
    let (reply, fresh) = tokio::task::spawn_blocking(move || {
        let mut stdout = Vec::new();
        let code = match Cli::try_parse_from(&request.argv) {
            Err(e) => {
                return (
                    Reply {
                        stdout: String::new(),
                        stderr: e.to_string(),
                        code: 1,
                    },
                    Vec::new(),
                );
            }
            Ok(cli) => {
                let mut ctx = Ctx::shared(home, &library, request.cwd, status);
                let result = execute(cli.command, &mut ctx, &mut stdout, cli.json);
                drop(ctx);
                match result {
                    Ok(()) => (0, String::new()),
                    Err(e) => (
                        if e.downcast_ref::<UsageError>().is_some() {
                            1
                        } else {
                            2
                        },
                        format!("error: {e:#}\n"),
                    ),
                }
            }
        };
        let fresh = library
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_outbox();
        (
            Reply {
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: code.1,
                code: code.0,
            },
            fresh,
        )
    })
    .await?;
    node.net.announce(fresh).await;
    let mut bytes = serde_json::to_vec(&reply)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    Ok(())
}
