//! The network simulation's scenarios at a size that fits CI (100 sites,
//! or `GATEHOUSE_SIM_NODES`), each with its figures printed. A failure
//! names its seed; `GATEHOUSE_SIM_SEED=<seed>` replays it exactly. The
//! full-size runs: `cargo run --release -p gatehouse-tests --bin simulate`.

use gatehouse_tests::scenario::{self, Outcome};
use gatehouse_tests::sim::{SimConfig, seed_from_env};

fn nodes() -> usize {
    std::env::var("GATEHOUSE_SIM_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn config(default_seed: u64) -> SimConfig {
    SimConfig {
        seed: seed_from_env(default_seed),
        ..SimConfig::default()
    }
}

fn report(result: Result<Outcome, String>) {
    match result {
        Ok(outcome) => eprintln!("{}: {}", outcome.name, outcome.figures),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn sites_joining_one_by_one_are_all_admitted_and_converge() {
    report(scenario::join_one_by_one(config(11), nodes()));
}

#[test]
fn two_sites_that_dial_each_other_at_once_move_each_envelope_once() {
    report(scenario::both_dial_at_once(config(17)));
}

#[test]
fn a_backlog_fetched_over_many_intervals_moves_each_envelope_once() {
    report(scenario::long_first_fetch_moves_each_envelope_once(config(
        19,
    )));
}

#[test]
fn a_site_back_with_nothing_changed_moves_no_envelope() {
    report(scenario::reconnect_with_nothing_changed(config(23)));
}

#[test]
fn a_clock_ahead_is_measured_by_its_peers() {
    report(scenario::a_clock_ahead_is_measured_by_its_peers(
        config(16),
        nodes().min(40),
    ));
}

#[test]
fn a_partition_heals() {
    report(scenario::partition_heals(config(12), nodes()));
}

#[test]
fn a_revocation_made_while_a_third_is_offline_for_30_days_wins_everywhere() {
    report(scenario::revocation_while_a_third_is_offline(
        config(13),
        nodes(),
    ));
}

#[test]
fn a_rogue_with_the_networks_certificates_obtains_nothing() {
    report(scenario::rogue_obtains_nothing(config(14), nodes()));
}

#[test]
fn an_admitted_peer_that_floods_is_cut_off() {
    report(scenario::admitted_peer_floods(config(15), nodes()));
}

#[test]
fn a_site_back_from_weeks_offline_takes_in_the_revocation_before_the_backlog() {
    report(scenario::urgent_first_after_weeks_offline(
        config(18),
        nodes().min(20),
    ));
}
