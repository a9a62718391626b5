//! The simulation's scenarios. Each builds a network in [`Sim`], does what
//! the scenario says, checks what must hold, and returns its figures; the
//! tests run them at a size that fits CI, `bin/simulate` at full size.

use gatehouse_protocol::trust::Judgement;

use crate::sim::{Sim, SimConfig};

/// An hour of virtual time, ms.
pub const HOUR_MS: u64 = 3_600_000;
/// A day of virtual time, ms.
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// What a scenario found.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario.
    pub name: &'static str,
    /// Its figures, one line.
    pub figures: String,
}

type Checked = Result<Outcome, String>;

fn fail(sim: &Sim, what: String) -> String {
    format!(
        "{what} (seed {}; replay with GATEHOUSE_SIM_SEED={})",
        sim.config.seed, sim.config.seed
    )
}

/// Sites join one at a time, `gap_ms` apart, and publish an item each.
fn grow(sim: &mut Sim, nodes: usize, gap_ms: u64) {
    for _ in 1..nodes {
        let i = sim.join();
        sim.run_for(gap_ms);
        sim.publish(i);
    }
}

fn converge(sim: &mut Sim, limit_ms: u64) -> Result<u64, String> {
    match sim.run_until_converged(1_000, limit_ms) {
        Some(took) => Ok(took),
        None => {
            let differ = differences(sim);
            Err(fail(
                sim,
                format!(
                    "not converged after {} s (now {} s): (site, lacks, extra) against site 0: {:?}; {}",
                    limit_ms / 1000,
                    sim.now_ms / 1000,
                    &differ[..differ.len().min(20)],
                    differ
                        .iter()
                        .take(3)
                        .map(|(i, ..)| sim.describe(*i))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ))
        }
    }
}

fn everyone_admits_everyone(sim: &Sim, nodes: usize) -> Result<(), String> {
    for i in 0..nodes {
        for j in 0..nodes {
            if sim.nodes[i].online && !sim.admits(i, j) {
                return Err(fail(sim, format!("site {i} does not admit site {j}")));
            }
        }
    }
    Ok(())
}

/// `nodes` sites join one by one, 20 s apart, each publishing an item;
/// every one is admitted everywhere and every site ends with every envelope.
pub fn join_one_by_one(config: SimConfig, nodes: usize) -> Checked {
    let mut sim = Sim::new(config);
    let started = sim.now_ms;
    grow(&mut sim, nodes, 20_000);
    let joined = sim.now_ms - started;
    let took = converge(&mut sim, 6 * HOUR_MS)?;
    everyone_admits_everyone(&sim, nodes)?;
    Ok(Outcome {
        name: "join one by one",
        figures: format!(
            "{} after the last of {} s of joins",
            sim.figures(Some(took)),
            joined / 1000
        ),
    })
}

/// Two sites dial each other at the same instant, so each takes itself
/// for the dialer: the one that missed 60 new items while offline still
/// receives each of them once, not once per side.
pub fn both_dial_at_once(config: SimConfig) -> Checked {
    const NEW: usize = 60;
    let mut sim = Sim::new(config);
    grow(&mut sim, 2, 2_000);
    converge(&mut sim, HOUR_MS)?;
    sim.go_offline(1);
    for _ in 0..NEW {
        sim.publish(0);
    }
    sim.run_for(1_000);
    sim.come_back_quietly(1);
    sim.reset_stats();
    if !sim.dial_both(0, 1) {
        return Err(fail(&sim, "the two sites were already connected".into()));
    }
    let took = converge(&mut sim, HOUR_MS)?;
    // The two know each other, so neither is sent the other's admission
    // proof: only the missing envelopes move.
    let synced = sim.stats.envelopes_synced;
    // A few more only if a lost message had a batch sent again.
    if synced > NEW as u64 + 5 {
        return Err(fail(
            &sim,
            format!(
                "{synced} envelopes moved for {NEW} missing: sessions ran on both sides, or proofs were pushed"
            ),
        ));
    }
    Ok(Outcome {
        name: "both dial at once",
        figures: format!("{synced} envelopes moved for {NEW} missing, in {took} ms"),
    })
}

/// A site back after a long absence fetches a backlog that takes many
/// reconcile intervals to move: the other side does not start a session
/// of its own meanwhile, so each envelope crosses once. Both orders of the
/// pair's keys are run (which side starts sessions depends on them).
pub fn long_first_fetch_moves_each_envelope_once(mut config: SimConfig) -> Checked {
    const NEW: usize = 1_500;
    // Small batches (as under an upload budget) make the fetch take many
    // round trips, and reconciling every second makes it outlast several
    // intervals, while each round trip (at most 240 ms) stays within one.
    config.sync.reconcile_every_ms = 1_000;
    config.sync.batch_bytes = 4_096;
    // No message is lost, so none is sent again: every envelope beyond
    // the missing ones would be a second session's (or a proof, which
    // sites that know each other do not send).
    config.loss_ppm = 0;
    let mut figures = Vec::new();
    let mut overlapped_all = 0;
    for (publisher, absent) in [(0, 1), (1, 0)] {
        let mut sim = Sim::new(config.clone());
        grow(&mut sim, 2, 2_000);
        converge(&mut sim, HOUR_MS)?;
        sim.go_offline(absent);
        for _ in 0..NEW {
            sim.publish(publisher);
        }
        sim.run_for(1_000);
        sim.reset_stats();
        sim.come_back(absent);
        let took = converge(&mut sim, HOUR_MS)?;
        let synced = sim.stats.envelopes_synced;
        if synced > NEW as u64 {
            return Err(fail(
                &sim,
                format!(
                    "{synced} envelopes moved for {NEW} missing: a second session ran during the fetch"
                ),
            ));
        }
        // The side that fetches (the one whose key orders first) asks for
        // the next batch before storing the one it has.
        let overlapped = sim.stats.fetches_overlapped;
        overlapped_all += overlapped;
        figures.push(format!(
            "{synced} envelopes moved in {took} ms, {overlapped} batches held while the next crossed"
        ));
    }
    if overlapped_all == 0 {
        return Err(format!(
            "no fetched batch was held while the next crossed ({})",
            figures.join("; ")
        ));
    }
    Ok(Outcome {
        name: "long first fetch",
        figures: format!("{NEW} missing, each way: {}", figures.join("; ")),
    })
}

/// A site back with nothing changed, in both orders of the pair's keys:
/// no envelope moves (certificates included: each already holds the
/// other's proof), and the sites agree in one reconcile round trip of at
/// most 128 bytes.
pub fn reconnect_with_nothing_changed(mut config: SimConfig) -> Checked {
    // Nothing lost, so nothing is asked twice.
    config.loss_ppm = 0;
    let mut figures = Vec::new();
    for absent in [1, 0] {
        let mut sim = Sim::new(config.clone());
        grow(&mut sim, 2, 2_000);
        // Enough that the sets are compared by fingerprint, not listed.
        for _ in 0..20 {
            sim.publish(0);
            sim.publish(1);
        }
        converge(&mut sim, HOUR_MS)?;
        sim.go_offline(absent);
        sim.run_for(60_000);
        sim.reset_stats();
        sim.come_back(absent);
        // Long enough for the first session, not for a second.
        sim.run_for(config.sync.reconcile_every_ms / 2);
        let st = &sim.stats;
        if st.sessions == 0 {
            return Err(fail(&sim, "no session ran after the site came back".into()));
        }
        if st.envelopes_synced > 0 {
            return Err(fail(
                &sim,
                format!(
                    "{} envelopes moved with nothing changed",
                    st.envelopes_synced
                ),
            ));
        }
        if st.reconcile_bytes > 128 {
            return Err(fail(
                &sim,
                format!(
                    "the reconcile exchange took {} bytes with nothing changed",
                    st.reconcile_bytes
                ),
            ));
        }
        figures.push(format!(
            "site {absent} back: {} sync messages, {} bytes (of which the reconcile exchange {})",
            st.sync_messages, st.sync_bytes, st.reconcile_bytes
        ));
    }
    Ok(Outcome {
        name: "reconnect, nothing changed",
        figures: figures.join("; "),
    })
}

/// One site's clock runs ten minutes ahead: every peer that syncs with it
/// measures it ten minutes ahead, within half the round trip, and it
/// measures each of them ten minutes behind; the others agree with each
/// other.
pub fn a_clock_ahead_is_measured_by_its_peers(config: SimConfig, nodes: usize) -> Checked {
    const AHEAD_MS: i64 = 10 * 60_000;
    let mut sim = Sim::new(config);
    grow(&mut sim, nodes, 2_000);
    let fast = nodes / 2;
    sim.nodes[fast].clock_ahead_ms = AHEAD_MS.unsigned_abs();
    // Long enough for every connected pair to ask again (every 5 minutes,
    // at a session).
    sim.run_for(12 * 60_000);
    let fast_key = sim.nodes[fast].key.public();
    let mut measured = 0;
    for (i, node) in sim.nodes.iter().enumerate().take(nodes) {
        for (peer, stats) in &node.core.status().peers {
            let (Some(offset), Some(rtt)) = (stats.clock_offset_ms, stats.clock_rtt_ms) else {
                continue;
            };
            let expected = if i == fast {
                -AHEAD_MS
            } else if *peer == fast_key {
                AHEAD_MS
            } else {
                0
            };
            let within = i64::try_from(rtt / 2 + 1).unwrap_or(i64::MAX);
            if (offset - expected).abs() > within {
                return Err(fail(
                    &sim,
                    format!(
                        "site {i} measured {peer} at {offset} ms (rtt {rtt} ms), expected {expected}"
                    ),
                ));
            }
            measured += 1;
        }
    }
    let of_fast = sim
        .nodes
        .iter()
        .filter(|n| {
            n.core
                .status()
                .peers
                .get(&fast_key)
                .is_some_and(|s| s.clock_offset_ms.is_some())
        })
        .count();
    if of_fast == 0 {
        return Err(fail(&sim, "no site measured the fast clock".into()));
    }
    Ok(Outcome {
        name: "a clock ahead",
        figures: format!("{measured} clocks measured; {of_fast} sites measured the one ahead"),
    })
}

/// The network splits in two; each side publishes; the partition heals
/// and every site ends with both sides' items.
pub fn partition_heals(config: SimConfig, nodes: usize) -> Checked {
    let mut sim = Sim::new(config);
    grow(&mut sim, nodes, 2_000);
    converge(&mut sim, 6 * HOUR_MS)?;
    sim.partition(|i| u8::from(i % 2 == 1));
    let mut published = Vec::new();
    for i in (0..nodes).step_by((nodes / 10).max(1)) {
        published.push(sim.publish(i));
    }
    sim.run_for(10 * 60_000);
    sim.reset_stats();
    sim.heal();
    let took = converge(&mut sim, 6 * HOUR_MS)?;
    for id in &published {
        for i in 0..nodes {
            if sim.judgement(i, id) != Some(Judgement::Accepted) {
                return Err(fail(&sim, format!("site {i} lacks item envelope {id}")));
            }
        }
    }
    Ok(Outcome {
        name: "partition heals",
        figures: sim.figures(Some(took)),
    })
}

/// A third of the network goes offline for 30 days; one offline site's
/// lead keeps publishing there while the admin revokes that lead's key as
/// compromised. When the third returns, the revocation wins everywhere:
/// every site holds the same envelopes and rejects everything that key signed.
pub fn revocation_while_a_third_is_offline(mut config: SimConfig, nodes: usize) -> Checked {
    // Thirty days of reconciling every minute is millions of sessions of
    // nothing; a quiet network reconciles less often, to the same effect.
    config.sync.reconcile_every_ms = 6 * HOUR_MS;
    config.sync.redial_max_ms = HOUR_MS;
    let mut sim = Sim::new(config);
    grow(&mut sim, nodes, 2_000);
    converge(&mut sim, 12 * HOUR_MS)?;
    let offline: Vec<usize> = (1..nodes).filter(|i| i % 3 == 1).collect();
    let leaver = offline[0];
    let early = sim.publish(leaver);
    sim.run_for(60_000);
    for &i in &offline {
        sim.go_offline(i);
    }
    let late = sim.publish(leaver);
    let revocation = sim.revoke_member(leaver);
    sim.run_for(30 * DAY_MS);
    sim.reset_stats();
    for &i in &offline {
        sim.come_back(i);
    }
    let took = converge(&mut sim, 12 * HOUR_MS)?;
    for i in 0..nodes {
        if sim.judgement(i, &revocation) != Some(Judgement::Accepted) {
            return Err(fail(
                &sim,
                format!("site {i} does not hold the revocation in effect"),
            ));
        }
        for id in [&early, &late] {
            if !matches!(sim.judgement(i, id), Some(Judgement::Rejected(_))) {
                return Err(fail(
                    &sim,
                    format!(
                        "site {i} judges the revoked key's change {id} {:?}",
                        sim.judgement(i, id)
                    ),
                ));
            }
        }
    }
    Ok(Outcome {
        name: "revocation while a third is offline",
        figures: format!("{} after the third returned", sim.figures(Some(took))),
    })
}

/// A site comes back from two weeks offline, on a poor line (small
/// batches), to a backlog of 400 items and one revocation made while it
/// was away: the revocation reaches it in the first envelopes it takes in,
/// before most of the backlog, whichever side runs the session (the
/// fetching side asks which envelopes are urgent; the sending side sends
/// them first).
pub fn urgent_first_after_weeks_offline(mut config: SimConfig, nodes: usize) -> Checked {
    config.sync.batch_bytes = 16 * 1024;
    // Two weeks of reconciling every minute is millions of sessions of
    // nothing; a quiet network reconciles less often, to the same effect.
    config.sync.reconcile_every_ms = 6 * HOUR_MS;
    config.sync.redial_max_ms = HOUR_MS;
    let mut sim = Sim::new(config);
    grow(&mut sim, nodes, 2_000);
    converge(&mut sim, 12 * HOUR_MS)?;
    let away = nodes - 1;
    sim.go_offline(away);
    let backlog: Vec<_> = (0..400).map(|k| sim.publish(1 + k % (nodes - 2))).collect();
    sim.run_for(60_000);
    let revocation = sim.revoke_member(nodes - 2);
    sim.run_for(14 * DAY_MS);
    sim.come_back(away);
    let started = sim.now_ms;
    while sim.ids(away).binary_search(&revocation).is_err() {
        if sim.now_ms - started > HOUR_MS {
            return Err(fail(&sim, "the revocation never reached the site".into()));
        }
        sim.run_for(10);
    }
    let arrived_ms = sim.now_ms - started;
    let held = sim.ids(away);
    let before = backlog
        .iter()
        .filter(|id| held.binary_search(id).is_ok())
        .count();
    if before * 5 > backlog.len() {
        return Err(fail(
            &sim,
            format!(
                "the revocation arrived after {before} of the {} backlog items",
                backlog.len()
            ),
        ));
    }
    let took = converge(&mut sim, 12 * HOUR_MS)?;
    Ok(Outcome {
        name: "urgent first after weeks offline",
        figures: format!(
            "the revocation arrived {arrived_ms} ms after the site came back, with {before} of {} backlog items before it; {}",
            backlog.len(),
            sim.figures(Some(took))
        ),
    })
}

/// A node holding every certificate of the network, but whose key nobody
/// delegated, dials ten sites and, on probation, pushes each of them 240
/// certificates of junk signed by its own key (revocations of itself and
/// of keys nobody knows, endorsements of nothing): each refuses it, it
/// obtains nothing, and nothing it sent is stored anywhere, even after
/// minutes of anti-entropy among the sites.
pub fn rogue_obtains_nothing(config: SimConfig, nodes: usize) -> Checked {
    let mut sim = Sim::new(config);
    grow(&mut sim, nodes, 2_000);
    converge(&mut sim, 6 * HOUR_MS)?;
    let reference = sim.ids(0);
    let targets: Vec<usize> = (0..nodes).step_by((nodes / 10).max(1)).collect();
    let rogue = sim.add_rogue(targets.clone());
    let held_by_rogue = sim.ids(rogue);
    // Once connected, still on probation, it pushes junk signed by its own
    // key to every site it dialled, in place of an admission proof.
    let junk = sim.junk_certificates(rogue, 80);
    let mut unpushed = targets.clone();
    // Refused after probation, it redials with backoff: each site is given
    // ten minutes to be reached.
    let give_up = sim.now_ms + 10 * 60_000;
    while !unpushed.is_empty() && sim.now_ms < give_up {
        sim.run_for(20);
        unpushed.retain(|t| !sim.push_raw(rogue, *t, junk.clone()));
    }
    if !unpushed.is_empty() {
        return Err(fail(
            &sim,
            format!("the rogue never reached sites {unpushed:?}"),
        ));
    }
    sim.run_for(5 * 60_000);
    if sim.ids(rogue) != held_by_rogue {
        return Err(fail(&sim, "the rogue obtained envelopes".into()));
    }
    for i in 0..nodes {
        if sim.ids(i) != reference {
            return Err(fail(
                &sim,
                format!("site {i} stored something from the rogue"),
            ));
        }
        if sim.lets_in(i, rogue) || sim.admits(i, rogue) {
            return Err(fail(&sim, format!("site {i} admitted the rogue")));
        }
    }
    let refused: u64 = targets
        .iter()
        .map(|t| sim.nodes[*t].core.status().refused_connections)
        .sum();
    if refused < targets.len() as u64 {
        return Err(fail(
            &sim,
            format!("only {refused} refusals by {} sites dialled", targets.len()),
        ));
    }
    Ok(Outcome {
        name: "rogue obtains nothing",
        figures: format!(
            "{refused} connections refused by {} sites dialled, each pushed {} junk certificates, none stored anywhere",
            targets.len(),
            junk.len()
        ),
    })
}

/// An admitted site floods its peers with forged envelopes: each peer cuts
/// it off, nothing forged is stored, and the rest of the network carries on,
/// including an envelope of a kind no node reads, which reaches everyone.
pub fn admitted_peer_floods(config: SimConfig, nodes: usize) -> Checked {
    let mut sim = Sim::new(config);
    grow(&mut sim, nodes, 2_000);
    converge(&mut sim, 6 * HOUR_MS)?;
    let flooder = nodes / 2;
    let peers: Vec<usize> = (0..nodes).filter(|j| sim.connected(flooder, *j)).collect();
    for n in 0..50u8 {
        // Real envelopes with one byte of the signature changed, and junk.
        let mut forged = sim.certificate_bytes(0)[0].clone();
        let last = forged.len() - 1;
        forged[last] ^= n | 1;
        sim.gossip_raw(flooder, forged);
        sim.gossip_raw(flooder, vec![n; 100]);
    }
    sim.run_for(60_000);
    for &p in &peers {
        if sim.connected(flooder, p) {
            return Err(fail(
                &sim,
                format!("site {p} is still connected to the flooder"),
            ));
        }
    }
    sim.reset_stats();
    let fresh = sim.publish(1);
    // An envelope of a kind no node reads, signed by an admitted key: stored
    // and passed on everywhere, never taken for a forgery.
    let later_kind = sim.publish_unread(2);
    let others: Vec<usize> = (0..nodes).filter(|i| *i != flooder).collect();
    sim.go_offline(flooder);
    let took = converge(&mut sim, 6 * HOUR_MS)?;
    for &i in &others {
        if sim.judgement(i, &fresh) != Some(Judgement::Accepted) {
            return Err(fail(
                &sim,
                format!("site {i} lacks the item published after the flood"),
            ));
        }
        if sim.judgement(i, &later_kind) != Some(Judgement::Accepted) {
            return Err(fail(
                &sim,
                format!("site {i} lacks the envelope of a later kind"),
            ));
        }
    }
    let site2 = sim.nodes[2].key.public();
    for &i in &others {
        let forged = sim.nodes[i]
            .core
            .status()
            .peers
            .get(&site2)
            .map_or(0, |p| p.forged);
        if forged > 0 {
            return Err(fail(
                &sim,
                format!("site {i} counted site 2's envelope of a later kind as forged"),
            ));
        }
    }
    let forged: u64 = peers
        .iter()
        .map(|p| sim.nodes[*p].core.status().forged_received)
        .sum();
    Ok(Outcome {
        name: "admitted peer floods",
        figures: format!(
            "{} | {} peers cut it off after {forged} forged envelopes in all",
            sim.figures(Some(took)),
            peers.len()
        ),
    })
}

/// Which online sites differ from site 0, and by how many envelopes.
pub fn differences(sim: &mut Sim) -> Vec<(usize, usize, usize)> {
    let reference: std::collections::BTreeSet<_> = sim.ids(0).into_iter().collect();
    let mut out = Vec::new();
    for i in 1..sim.nodes.len() {
        if !sim.nodes[i].online {
            continue;
        }
        let mine: std::collections::BTreeSet<_> = sim.ids(i).into_iter().collect();
        let lacks = reference.difference(&mine).count();
        let extra = mine.difference(&reference).count();
        if lacks + extra > 0 {
            out.push((i, lacks, extra));
        }
    }
    out
}
