//! `gatehouse demo`: a local network of three nodes on loopback, made from
//! the sample library, that stays up until Ctrl-C.
//!
//! Node A founds the network; B and C are admitted by A's admin and join
//! with invitations, exactly as real sites do. Each publishes its own
//! establishment's sample items, then the nodes connect in a line
//! (C–B–A) and reconcile; an item published at A while they run is then
//! shown arriving at C. Each node serves the control socket, so every
//! `gatehouse --home DIR ...` command works against it while the demo runs.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gatehouse_node::home::{Home, generate_key};
use gatehouse_node::library::{InitOptions, Library};
use gatehouse_node::net::NetConfig;
use gatehouse_node::query::filter::Filter;
use gatehouse_node::replica::bundle;
use gatehouse_node::runtime::RunningNode;
use gatehouse_node::sample::{SampleEstablishment, read_sample_dir};
use gatehouse_node::web::WebAccess;

use crate::daemon;

/// The web port of the demo's node A (B and C take the next two when free).
pub const DEMO_WEB_PORT: u16 = 8480;

/// How long the demo waits for replication before giving up.
const DEMO_DEADLINE: Duration = Duration::from_secs(120);

fn net_config(bootstrap: Option<&str>) -> anyhow::Result<NetConfig> {
    Ok(NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        bootstrap: match bootstrap {
            Some(a) => vec![a.parse()?],
            None => Vec::new(),
        },
        mdns: false,
        reconcile_every: Duration::from_secs(5),
        probation: Duration::from_secs(gatehouse_node::net::PROBATION_SECS),
        ..NetConfig::default()
    })
}

/// Makes the three nodes; returns their homes.
fn build(dir: &std::path::Path, sites: &[&SampleEstablishment]) -> anyhow::Result<Vec<Home>> {
    let founder = sites[0];
    let home_a = Home::new(dir.join("node-a"));
    let (mut lib_a, _) = Library::init(
        &home_a,
        &InitOptions {
            establishment: founder.name.clone(),
            setting: founder.setting,
            nation: founder.nation,
            network_name: "Gatehouse demo network".into(),
            member_name: "Healthcare manager".into(),
        },
    )?;
    let admin = home_a.read_key("admin")?.context("admin key missing")?;
    for (_, content) in &founder.items {
        lib_a.publish(content, &[])?;
    }
    let mut homes = vec![home_a];
    for (site, name) in sites[1..].iter().zip(["node-b", "node-c"]) {
        let home = Home::new(dir.join(name));
        home.create()?;
        let est = generate_key()?;
        home.write_key("establishment", &est)?;
        lib_a.admit(
            &admin,
            est.public(),
            &site.name,
            site.setting,
            site.nation,
            None,
        )?;
        let invite = bundle::write(&lib_a.config().network, &lib_a.certificate_bytes()?);
        let (mut lib, _) = Library::join(&home, &invite, "Healthcare manager")?;
        for (_, content) in &site.items {
            lib.publish(content, &[])?;
        }
        homes.push(home);
    }
    Ok(homes)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > DEMO_DEADLINE {
            bail!("gave up after {DEMO_DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// Runs the demo until Ctrl-C.
pub fn run(
    out: &mut dyn Write,
    dir: Option<PathBuf>,
    samples: PathBuf,
    no_wait: bool,
) -> anyhow::Result<()> {
    let establishments = read_sample_dir(&samples)
        .with_context(|| format!("reading the sample library in {}", samples.display()))?;
    let mut sites: Vec<&SampleEstablishment> = Vec::new();
    if let Some(n) = establishments.iter().find(|e| e.name == "HMP Northgate") {
        sites.push(n);
    }
    for e in &establishments {
        if sites.len() < 3 && !sites.iter().any(|s| s.name == e.name) {
            sites.push(e);
        }
    }
    if sites.len() < 3 {
        bail!(
            "the demo needs three establishments in {}",
            samples.display()
        );
    }
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "gatehouse-demo-{}",
            hex::encode(gatehouse_node::home::random_bytes::<4>()?)
        )),
    };
    let homes = build(&dir, &sites)?;
    writeln!(out, "Made three nodes in {}:", dir.display())?;
    for (home, site) in homes.iter().zip(&sites) {
        writeln!(
            out,
            "  {}  {} ({} items)",
            home.root().display(),
            site.name,
            site.items.len()
        )?;
    }
    out.flush()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut nodes: Vec<RunningNode> = Vec::new();
        let mut webs = Vec::new();
        let mut previous: Option<String> = None;
        for (n, home) in homes.iter().enumerate() {
            let node = RunningNode::start(home, net_config(previous.as_deref())?).await?;
            wait_for("a listen address", || !node.net.status().listening.is_empty()).await?;
            let addr = format!(
                "{}/p2p/{}",
                node.net.status().listening[0],
                node.net.status().peer_id
            );
            daemon::serve_control(home, node.clone()).await?;
            // The usual web port and the next two if free, any port if not.
            let port = DEMO_WEB_PORT + u16::try_from(n).unwrap_or(0);
            let web = match daemon::serve_web(home, &node, (([127, 0, 0, 1], port).into(), WebAccess::Open, daemon::Monitoring::default()), None).await {
                Ok(w) => w,
                Err(_) => daemon::serve_web(home, &node, (([127, 0, 0, 1], 0).into(), WebAccess::Open, daemon::Monitoring::default()), None).await?,
            };
            webs.push(web);
            previous = Some(addr);
            nodes.push(node);
        }
        let total = |n: &RunningNode| n.lock().status().map(|s| s.envelopes).unwrap_or(0);
        let took = wait_for("the nodes to reconcile", || {
            let counts: Vec<usize> = nodes.iter().map(total).collect();
            counts.iter().all(|c| *c == counts[0]) && counts[0] > 0
        })
        .await?;
        writeln!(
            out,
            "The nodes connected in a line (C-B-A) and reconciled in {:.1} s: each holds {} envelopes.",
            took.as_secs_f64(),
            total(&nodes[0])
        )?;
        let mut content = sites[0].items[0].1.clone();
        content.title = format!("{} (published during the demo)", content.title);
        let started = Instant::now();
        let id = nodes[0].local(|lib| lib.publish(&content, &[])).await?;
        let c = nodes[2].clone();
        wait_for("the new item at node C", || {
            c.lock()
                .list(&Filter::default())
                .map(|l| l.iter().any(|v| v.item.id == id))
                .unwrap_or(false)
        })
        .await?;
        writeln!(
            out,
            "Published {:?} at A; it reached C (through B) in {} ms.\n",
            content.title,
            started.elapsed().as_millis()
        )?;
        let urls: Vec<String> = webs.iter().map(|w| format!("http://{}/", w.addr)).collect();
        writeln!(out, "Each node serves the library to browsers:")?;
        for (url, label) in urls.iter().zip(["A", "B", "C"]) {
            writeln!(out, "  node {label}  {url}")?;
        }
        writeln!(out, "  for example {}search?q=naloxone\n", urls[2])?;
        if no_wait {
            for (home, web) in homes.iter().zip(webs) {
                daemon::stop_web(home, web).await;
            }
            for node in &nodes {
                node.stop().await;
                node.lock().settle()?;
            }
            for home in &homes {
                let _ = std::fs::remove_file(home.root().join(daemon::SOCKET));
            }
            writeln!(out, "Stopped (--no-wait); the data directories remain.")?;
            return anyhow::Ok(());
        }
        writeln!(out, "The demo runs until Ctrl-C. While it runs, try:")?;
        for (home, label) in homes.iter().zip(["A", "B", "C"]) {
            writeln!(
                out,
                "  gatehouse --home {} status            # node {label}",
                home.root().display()
            )?;
        }
        let c_home = homes[2].root().display();
        writeln!(out, "  gatehouse --home {c_home} search \"naloxone on release\"")?;
        writeln!(out, "  gatehouse --home {c_home} establishments")?;
        writeln!(out, "  gatehouse --home {c_home} show {}", id.short())?;
        writeln!(
            out,
            "  gatehouse --home {} publish samples/library/hmp-northgate/05-take-home-naloxone-on-release.md",
            homes[0].root().display()
        )?;
        out.flush()?;
        let _ = tokio::signal::ctrl_c().await;
        for (home, web) in homes.iter().zip(webs) {
            daemon::stop_web(home, web).await;
        }
        for node in &nodes {
            node.stop().await;
            let _ = node.lock().settle();
        }
        for home in &homes {
            let _ = std::fs::remove_file(home.root().join(daemon::SOCKET));
        }
        anyhow::Ok(())
    })
}
