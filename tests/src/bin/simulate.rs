//! Runs the network simulation's scenarios at full size and prints their
//! figures: `simulate [--nodes N] [--seed S] [--no-content-checks] [SCENARIO...]`.
//!
//! Scenarios: join, partition, revocation, rogue, flood (all by default).
//! Every site judges the content of each change it receives, as a node
//! does; `--no-content-checks` turns that off, to see what it costs.

use anyhow::{Context, bail};
use gatehouse_tests::scenario;
use gatehouse_tests::sim::SimConfig;

fn main() -> anyhow::Result<()> {
    // RUST_LOG=gatehouse_node=debug shows what each core decides.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut nodes = 300;
    let mut seed = 1;
    let mut content_checks = true;
    let mut chosen = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nodes" => nodes = args.next().context("--nodes N")?.parse()?,
            "--seed" => seed = args.next().context("--seed S")?.parse()?,
            "--no-content-checks" => content_checks = false,
            "join" | "partition" | "revocation" | "rogue" | "flood" => chosen.push(arg),
            other => bail!("unknown argument {other:?}"),
        }
    }
    if chosen.is_empty() {
        chosen = ["join", "partition", "revocation", "rogue", "flood"]
            .map(String::from)
            .to_vec();
    }
    let config = SimConfig {
        seed,
        content_checks,
        ..SimConfig::default()
    };
    let mut failed = false;
    for name in chosen {
        let started = std::time::Instant::now();
        let result = match name.as_str() {
            "join" => scenario::join_one_by_one(config.clone(), nodes),
            "partition" => scenario::partition_heals(config.clone(), nodes),
            "revocation" => scenario::revocation_while_a_third_is_offline(config.clone(), nodes),
            "rogue" => scenario::rogue_obtains_nothing(config.clone(), nodes),
            _ => scenario::admitted_peer_floods(config.clone(), nodes),
        };
        let wall = started.elapsed().as_secs_f64();
        match result {
            Ok(o) => println!("{}: {} | {wall:.1} s wall", o.name, o.figures),
            Err(e) => {
                failed = true;
                println!("{name}: FAILED: {e} | {wall:.1} s wall");
            }
        }
    }
    if failed {
        bail!("a scenario failed");
    }
    Ok(())
}
