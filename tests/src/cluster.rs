//! A network of real nodes on loopback, for tests and the harness.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gatehouse_node::home::{Home, generate_key};
use gatehouse_node::library::{InitOptions, Library};
use gatehouse_node::net::{Multiaddr, NetConfig};
use gatehouse_node::query::filter::Filter;
use gatehouse_node::replica::bundle;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::staff::{NewAccount, Staff};
use gatehouse_node::web::WebServer;
use gatehouse_protocol::certificate::MemberRole;
use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::vocab::{Nation, Setting};

/// Sites of one network, each with its own data directory.
pub struct Cluster {
    /// Where the data directories are.
    pub dir: PathBuf,
    /// The data directory of each site; site 0 founded the network.
    pub homes: Vec<Home>,
    /// The network admin key (held by site 0).
    pub admin: SecretKey,
}

/// The name of site `i`.
pub fn site_name(i: usize) -> String {
    format!("HMP Site {i}")
}

impl Cluster {
    /// Founds a network at site 0 and has `sites - 1` more sites admitted and joined.
    pub fn new(dir: &Path, sites: usize) -> anyhow::Result<Self> {
        let founder = Home::new(dir.join("site-0"));
        let (mut lib, _) = Library::init(
            &founder,
            &InitOptions {
                establishment: site_name(0),
                setting: Setting::LocalRemand,
                nation: Nation::England,
                network_name: "Test network".into(),
                member_name: "Healthcare manager".into(),
            },
        )?;
        let admin = founder.read_key("admin")?.context("admin key")?;
        let mut homes = vec![founder];
        for i in 1..sites {
            let home = Home::new(dir.join(format!("site-{i}")));
            home.create()?;
            let est = generate_key()?;
            home.write_key("establishment", &est)?;
            lib.admit(
                &admin,
                est.public(),
                &site_name(i),
                Setting::PrisonCatC,
                Nation::England,
                None,
            )?;
            let invite = bundle::write(&lib.config().network, &lib.certificate_bytes()?);
            Library::join(&home, &invite, "Healthcare manager")?;
            homes.push(home);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            homes,
            admin,
        })
    }

    /// Gives a person of site `i` a node of their own (`name` under the
    /// cluster's directory): their key is delegated by the site's
    /// establishment key and their node joins with the site's envelopes.
    /// Returns the new node's data directory and the person's key.
    pub fn add_member_node(&self, i: usize, name: &str) -> anyhow::Result<(Home, SecretKey)> {
        let home = Home::new(self.dir.join(name));
        home.create()?;
        let person = generate_key()?;
        home.write_key("member", &person)?;
        let invite = {
            let mut lib = Library::open(&self.homes[i])?;
            let est = self.homes[i]
                .read_key("establishment")?
                .context("establishment key")?;
            let est_id = lib.config().establishment;
            lib.delegate(&est, est_id, person.public(), name, MemberRole::Person)?;
            bundle::write(&lib.config().network, &lib.export()?)
        };
        Library::join(&home, &invite, name)?;
        Ok((home, person))
    }

    /// Site `i`'s data directory.
    pub fn home(&self, i: usize) -> &Home {
        &self.homes[i]
    }

    /// Starts site `i`'s node on loopback, dialling `bootstrap`.
    pub async fn start(&self, i: usize, bootstrap: Vec<Multiaddr>) -> anyhow::Result<RunningNode> {
        Ok(RunningNode::start(&self.homes[i], loopback(bootstrap)).await?)
    }

    /// Starts every site, each later one dialling site 0.
    pub async fn start_all(&self) -> anyhow::Result<Vec<RunningNode>> {
        let first = self.start(0, vec![]).await?;
        let at = address(&first).await?;
        let mut nodes = vec![first];
        for i in 1..self.homes.len() {
            nodes.push(self.start(i, vec![at.clone()]).await?);
        }
        Ok(nodes)
    }
}

/// Adds `name` as a clinician at site `node` (its data directory `home`)
/// and serves that node's web page, staff signing in, on loopback.
pub async fn serve_with_staff(
    node: &RunningNode,
    home: &Home,
    name: &str,
) -> anyhow::Result<(WebServer, NewAccount)> {
    let staff_home = home.clone();
    let who = name.to_string();
    let new = node
        .local(move |lib| Staff::of(&staff_home).add(lib, &who, None, MemberRole::Clinician))
        .await?;
    let server = WebServer::start(([127, 0, 0, 1], 0).into(), node.web_state(home)).await?;
    Ok((server, new))
}

/// A network configuration for tests: loopback, no mDNS, quick retries.
pub fn loopback(bootstrap: Vec<Multiaddr>) -> NetConfig {
    NetConfig {
        listen: vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .unwrap_or_else(|_| Multiaddr::empty()),
        ],
        bootstrap,
        mdns: false,
        reconcile_every: Duration::from_secs(2),
        probation: Duration::from_secs(2),
        ..NetConfig::default()
    }
}

/// Waits until `done` holds, checking every 20 ms, for at most `deadline`.
pub async fn wait_until(
    deadline: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if done() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > deadline {
            bail!("gave up after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The address to dial a node at (its first listen address with its PeerId).
pub async fn address(node: &RunningNode) -> anyhow::Result<Multiaddr> {
    wait_until(Duration::from_secs(10), "a listen address", || {
        !node.net.status().listening.is_empty()
    })
    .await?;
    let s = node.net.status();
    Ok(format!("{}/p2p/{}", s.listening[0], s.peer_id).parse()?)
}

/// Whether a node's library lists the item.
pub fn holds(node: &RunningNode, id: &ItemId) -> bool {
    node.lock()
        .list(&Filter::default())
        .map(|l| l.iter().any(|v| v.item.id == *id))
        .unwrap_or(false)
}

/// A node's whole library as JSON, for comparing nodes.
pub fn library_json(node: &RunningNode) -> String {
    let lib = node.lock();
    let items = lib.list(&Filter::default()).unwrap_or_default();
    let full: Vec<_> = items
        .iter()
        .filter_map(|v| lib.get(&v.item.id, None).ok())
        .collect();
    serde_json::to_string(&full).unwrap_or_default()
}
