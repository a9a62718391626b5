//! Rebuilding trust from every certificate a node holds, at the size of a
//! mature national network and under a flood of self-revocations.
//!
//! `cargo bench -p gatehouse-protocol --bench trust` prints, for each set,
//! the time of one `TrustView::build`.

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_protocol::certificate::{
    Admission, Certificate, Delegation, Genesis, MemberRole, Revocation, RevokeTarget,
};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EstablishmentId, NetworkId};
use gatehouse_protocol::key::SecretKey;
use gatehouse_protocol::trust::TrustView;
use gatehouse_protocol::vocab::{Nation, Setting};

fn secret(n: u64) -> SecretKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    seed[31] = 0x5a;
    SecretKey::from_seed(seed)
}

fn sign(cert: Certificate, key: &SecretKey, net: &NetworkId) -> Verified {
    Verified::sign(Body::Certificate(cert), key, net, 1)
}

/// A network of `sites` establishments with `people` delegated keys each,
/// one in ten of whom has left (a revocation by the site): about
/// `sites * people * 1.1` certificates.
fn network(sites: u64, people: u64) -> (NetworkId, Vec<Verified>) {
    let admin = secret(0);
    let genesis = Genesis {
        name: "Bench network".into(),
        admins: vec![admin.public()],
        threshold: 1,
        nonce: [1; 16],
    };
    let net = genesis.network_id();
    let mut certs = vec![sign(Certificate::Genesis(genesis), &admin, &net)];
    for s in 0..sites {
        let site_key = secret(1_000_000 + s);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&s.to_le_bytes());
        let establishment = EstablishmentId(id);
        certs.push(sign(
            Certificate::Admit(Admission {
                establishment,
                key: site_key.public(),
                name: format!("HMP Site {s}"),
                setting: Setting::LocalRemand,
                nation: Nation::England,
            }),
            &admin,
            &net,
        ));
        for p in 0..people {
            let person = secret(s * 10_000 + p + 1);
            certs.push(sign(
                Certificate::Delegate(Delegation {
                    establishment,
                    member: person.public(),
                    name: format!("Person {p}"),
                    role: MemberRole::Person,
                }),
                &site_key,
                &net,
            ));
            if p % 10 == 0 {
                certs.push(sign(
                    Certificate::Revoke(Revocation {
                        target: RevokeTarget::Key(person.public()),
                        keep: Vec::new(),
                        reason: "left".into(),
                    }),
                    &site_key,
                    &net,
                ));
            }
        }
    }
    (net, certs)
}

/// `count` revocations a single key signs of itself.
fn self_revocations(net: &NetworkId, count: u64) -> Vec<Verified> {
    let junk = secret(u64::MAX);
    (0..count)
        .map(|n| {
            sign(
                Certificate::Revoke(Revocation {
                    target: RevokeTarget::Key(junk.public()),
                    keep: Vec::new(),
                    reason: format!("junk {n}"),
                }),
                &junk,
                net,
            )
        })
        .collect()
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("trust_build");
    group.sample_size(10);
    for (sites, people) in [(300, 30), (300, 300)] {
        let (net, certs) = network(sites, people);
        group.bench_function(format!("{} certificates", certs.len()), |b| {
            b.iter(|| TrustView::build(&net, &certs));
        });
    }
    let (net, mut certs) = network(300, 30);
    let honest = certs.len();
    certs.extend(self_revocations(&net, 50_000));
    group.bench_function(
        format!("{honest} certificates and 50000 self-revocations by one key"),
        |b| b.iter(|| TrustView::build(&net, &certs)),
    );
    group.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
