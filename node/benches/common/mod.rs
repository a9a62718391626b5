//! What the benchmarks share: a one-establishment network, synthetic items
//! signed in it, the clinician queries timed, and percentiles.

#![allow(dead_code, missing_docs)]

use std::time::Duration;

use gatehouse_node::authoring::new_item;
use gatehouse_node::sample::synthetic_content;
use gatehouse_protocol::certificate::{Admission, Certificate, Delegation, Genesis, MemberRole};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EstablishmentId, NetworkId};
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::vocab::{Nation, Setting};

/// Library sizes to benchmark: `GATEHOUSE_BENCH_SIZES` (comma separated),
/// or 10k and 100k.
pub fn sizes() -> Vec<u64> {
    std::env::var("GATEHOUSE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000])
}

pub struct Net {
    pub network: NetworkId,
    pub est_id: EstablishmentId,
    pub certs: Vec<Verified>,
    pub member: SecretKey,
}

pub fn network() -> Net {
    let admin = SecretKey::from_seed([1; 32]);
    let establishment = SecretKey::from_seed([2; 32]);
    let member = SecretKey::from_seed([3; 32]);
    let genesis = Genesis {
        name: "Bench network".into(),
        admins: vec![admin.public()],
        threshold: 1,
        nonce: [0; 16],
    };
    let network = genesis.network_id();
    let est_id = EstablishmentId([2; 16]);
    let certs = vec![
        Verified::sign(
            Body::Certificate(Certificate::Genesis(genesis)),
            &admin,
            &network,
            1,
        ),
        Verified::sign(
            Body::Certificate(Certificate::Admit(Admission {
                establishment: est_id,
                key: establishment.public(),
                name: "HMP Bench".into(),
                setting: Setting::LocalRemand,
                nation: Nation::England,
            })),
            &admin,
            &network,
            1,
        ),
        Verified::sign(
            Body::Certificate(Certificate::Delegate(Delegation {
                establishment: est_id,
                member: member.public(),
                name: "Healthcare manager".into(),
                role: MemberRole::Person,
            })),
            &establishment,
            &network,
            1,
        ),
    ];
    Net {
        network,
        est_id,
        certs,
        member,
    }
}

/// Synthetic item `n`, signed a minute after item `n - 1`.
pub fn item(net: &Net, n: u64) -> Verified {
    new_item(
        &synthetic_content(n),
        &net.member,
        &[7; 16],
        net.est_id,
        &net.network,
        1_700_000_000_000 + n * 60_000,
    )
    .expect("item")
}

pub fn items(net: &Net, n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            new_item(
                &synthetic_content(i),
                &net.member,
                &[7; 16],
                net.est_id,
                &net.network,
                1_700_000_000_000,
            )
            .expect("item")
            .bytes()
            .to_vec()
        })
        .collect()
}

/// The signed bytes of each envelope (all but its signature), signed
/// again by the member key: as many signatures over messages of the same
/// lengths, to time raw verification against.
pub fn signed_alike(net: &Net, envelopes: &[Vec<u8>]) -> Vec<(Vec<u8>, [u8; 64])> {
    envelopes
        .iter()
        .map(|e| {
            let msg = e[..e.len() - 64].to_vec();
            let sig = net.member.sign(&msg);
            (msg, sig)
        })
        .collect()
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e3
}

pub const QUERIES: &[&str] = &[
    "naloxone release",
    "alcohol withdrawal",
    "opioid substitution therapy",
    "clozapine monitoring",
    "dental triage waiting list",
    "self-harm observation ACCT",
    "hepatitis",
    "interpreter language",
    "missed hospital appointments escort",
    "controlled drugs audit",
    "diabetes",
    "frailty falls",
];

/// The library kept in `dir` for `net`, built by `build` the first time
/// (a `complete` marker tells a finished build from an interrupted one,
/// which is thrown away). Returns it and whether it was built now.
pub fn open_or_build(
    dir: &std::path::Path,
    net: &Net,
    build: impl FnOnce(&mut gatehouse_node::library::Library),
) -> (gatehouse_node::library::Library, bool) {
    use gatehouse_node::library::{Library, NodeConfig};
    let complete = dir.join("complete");
    if !complete.exists() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let config = NodeConfig {
        network: net.network,
        establishment: net.est_id,
        member: None,
        node: net.member.public(),
        actor_suffix: "00112233445566778899aabbccddeeff".into(),
    };
    let store = gatehouse_node::store::SledStore::open(&dir.join("store")).expect("store");
    let mut lib =
        Library::with_store_in(std::sync::Arc::new(store), config, &dir.join("index"), None)
            .expect("library");
    if complete.exists() {
        return (lib, false);
    }
    lib.ingest_many(net.certs.clone()).expect("certificates");
    build(&mut lib);
    std::fs::write(&complete, b"").expect("mark complete");
    (lib, true)
}
