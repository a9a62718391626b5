//! `gatehouse doctor`: checks what a node needs and says what to fix: the
//! data directory and key files (present, private), the configuration
//! file, the store and index (opened, which repairs derived state), the
//! clock (against the peers' clocks while the node runs, which each sync
//! measures; otherwise against envelopes claimed in the future), the
//! bootstrap and remembered
//! peers (reachable over TCP), and the listening ports (free to bind, or
//! bound by the running node).

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use gatehouse_node::home::Home;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde::Serialize;

use crate::config::Config;
use crate::daemon::RunArgs;
use crate::ops::{Op, Outcome, dispatch};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Fine.
    Ok,
    /// Works, but worth attention.
    Warn,
    /// Needs fixing.
    Fail,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it came out.
    pub state: State,
    /// What was found.
    pub detail: String,
    /// What to do, when something is wrong.
    pub fix: Option<String>,
}

fn check(name: &str, state: State, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check {
        name: name.to_string(),
        state,
        detail: detail.into(),
        fix: fix.map(str::to_string),
    }
}

/// How long a peer's TCP port is given to answer.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// Claimed times further ahead than this point to a clock that is wrong.
const FUTURE_SLACK_MS: u64 = 5 * 60 * 1000;

fn mode(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

/// Runs every check for the node in `home`, as `node run` with `args`
/// would run it.
pub fn run(home: &Home, args: &RunArgs) -> Vec<Check> {
    let mut out = Vec::new();
    let root = home.root();
    if !home.is_initialised() {
        out.push(check(
            "data directory",
            State::Fail,
            format!("no node in {}", root.display()),
            Some("make one: `gatehouse init --join INVITATION` (or `init --establishment NAME` to found a network)"),
        ));
        return out;
    }
    match mode(root) {
        Some(m) if m & 0o077 != 0 => out.push(check(
            "data directory",
            State::Warn,
            format!(
                "{} is mode {m:o}: other local users can list it",
                root.display()
            ),
            Some(&format!("chmod 700 {}", root.display())),
        )),
        _ => out.push(check(
            "data directory",
            State::Ok,
            format!("{}", root.display()),
            None,
        )),
    }
    keys(home, &mut out);
    let config = match Config::resolve(home, args) {
        Ok(c) => {
            out.push(check(
                "configuration",
                State::Ok,
                c.file.as_ref().map_or_else(
                    || "no file; the defaults and flags".to_string(),
                    |f| format!("{} reads", f.display()),
                ),
                None,
            ));
            Some(c)
        }
        Err(e) => {
            out.push(check(
                "configuration",
                State::Fail,
                format!("{e:#}"),
                Some("correct the file at the line named"),
            ));
            None
        }
    };
    let keys_failed = out.iter().any(|c| c.state == State::Fail);
    let net = library(home, keys_failed, &mut out);
    if let Some(config) = &config {
        peers(home, config, &mut out);
        ports(config, net.as_ref(), &mut out);
    }
    out
}

fn keys(home: &Home, out: &mut Vec<Check>) {
    let dir = home.keys_dir();
    if let Some(m) = mode(&dir).filter(|m| m & 0o077 != 0) {
        out.push(check(
            "keys",
            State::Fail,
            format!("{} is mode {m:o}", dir.display()),
            Some(&format!("chmod 700 {}", dir.display())),
        ));
    }
    for name in ["node", "member", "establishment", "admin"] {
        let path = home.key_path(name);
        let found = home.read_key(name);
        let c = match (name, found) {
            (_, Err(e)) => check(
                &format!("{name} key"),
                State::Fail,
                e.to_string(),
                Some(&format!(
                    "chmod 600 {} (and check it is the file gatehouse wrote)",
                    path.display()
                )),
            ),
            (_, Ok(Some(_))) => check(
                &format!("{name} key"),
                State::Ok,
                path.display().to_string(),
                None,
            ),
            ("node", Ok(None)) => check(
                "node key",
                State::Fail,
                format!("{} is missing: the node cannot run", path.display()),
                Some("restore keys/ from the backup, or join again with an invitation"),
            ),
            ("member", Ok(None)) => check(
                "member key",
                State::Warn,
                "no publishing key here: this node can read and sync, not publish",
                Some("a site lead's key is delegated with `gatehouse member add` at the site"),
            ),
            (_, Ok(None)) => check(
                &format!("{name} key"),
                State::Ok,
                "not on this machine (kept offline, as it should be)",
                None,
            ),
        };
        out.push(c);
    }
}

/// Opens the library (or asks the running node): store, index, trust, and
/// the clock against what peers claim.
fn library(
    home: &Home,
    keys_failed: bool,
    out: &mut Vec<Check>,
) -> Option<gatehouse_node::net::NetStatus> {
    let status = dispatch(
        home.clone(),
        Op::Status {
            stale_after_ms: u64::MAX,
        },
    );
    let (report, net) = match status {
        Ok(Outcome::Status { report, net, .. }) => (report, net),
        Ok(_) => return None,
        Err(e) => {
            out.push(check(
                "store",
                State::Fail,
                format!("{e:#}"),
                Some(if keys_failed {
                    "fix the key files above: the node opens once they are its owner's only"
                } else {
                    "see the message; a damaged store is restored from a backup (`gatehouse restore`) or from peers"
                }),
            ));
            return None;
        }
    };
    // A running node answers with its network's state.
    let running = net.is_some();
    out.push(check(
        "store and index",
        State::Ok,
        format!(
            "{} envelopes, {} items{}",
            report.envelopes,
            report.items,
            if running {
                " (the node is running)"
            } else {
                "; opened, derived state checked"
            }
        ),
        None,
    ));
    let pending: usize = report.pending.values().sum();
    let rejected: usize = report.rejected.values().sum();
    if pending + rejected > 0 {
        out.push(check(
            "trust",
            State::Warn,
            format!("{pending} envelopes pending, {rejected} rejected"),
            Some("`gatehouse status` says why; pending ones wait for certificates from peers"),
        ));
    }
    match &net {
        Some(status) => peer_clocks(status, out),
        None => clock(home, out),
    }
    net
}

/// This machine's clock against its peers', as the running node measured
/// them (each sync asks the peer's time): the median offset says whether
/// this clock is wrong, one peer far from the rest that its clock is.
fn peer_clocks(status: &gatehouse_node::net::NetStatus, out: &mut Vec<Check>) {
    let mut measured: Vec<(i64, u64, String)> = status
        .peers
        .iter()
        .filter(|(_, p)| p.connected)
        .filter_map(|(id, p)| {
            let name = p.establishment.clone().unwrap_or_else(|| id.clone());
            Some((p.clock_offset_ms?, p.clock_rtt_ms?, name))
        })
        .collect();
    if measured.is_empty() {
        out.push(check(
            "clock",
            State::Ok,
            "no peer has told its time yet (each sync with a peer asks it)",
            None,
        ));
        return;
    }
    measured.sort_by_key(|(offset, _, _)| *offset);
    let slack = i64::try_from(FUTURE_SLACK_MS).unwrap_or(i64::MAX);
    let minutes = |ms: i64| (ms.unsigned_abs() + 30_000) / 60_000;
    // With one or two peers, a difference cannot be laid at either door.
    if measured.len() < 3 {
        let apart: Vec<String> = measured
            .iter()
            .filter(|(offset, _, _)| offset.abs() > slack)
            .map(|(offset, _, name)| {
                format!(
                    "{name}'s clock is {} min {} this one",
                    minutes(*offset),
                    if *offset > 0 { "ahead of" } else { "behind" }
                )
            })
            .collect();
        out.push(if apart.is_empty() {
            check(
                "clock",
                State::Ok,
                format!(
                    "within 5 min of {} connected peer{}' clocks",
                    measured.len(),
                    if measured.len() == 1 { "" } else { "s" }
                ),
                None,
            )
        } else {
            check(
                "clock",
                State::Warn,
                format!(
                    "{}: one of the two is wrong (three or more peers would tell which)",
                    apart.join(", ")
                ),
                Some("check this machine's time (timedatectl), and ask that site to check theirs"),
            )
        });
        return;
    }
    // The middle of the peers' offsets: a clock that only some have wrong
    // does not move it.
    let median = measured[measured.len() / 2].0;
    if median.abs() > slack {
        out.push(check(
            "clock",
            State::Warn,
            format!(
                "this machine's clock is {} min {} its peers' (the middle of {} measured)",
                minutes(median),
                if median > 0 { "behind" } else { "ahead of" },
                measured.len()
            ),
            Some("set this machine's time: timedatectl set-ntp true, or the site's time server"),
        ));
        return;
    }
    let odd: Vec<String> = measured
        .iter()
        .filter(|(offset, _, _)| (offset - median).abs() > slack)
        .map(|(offset, _, name)| {
            let off = offset - median;
            format!(
                "{name} is {} min {}",
                minutes(off),
                if off > 0 { "ahead" } else { "behind" }
            )
        })
        .collect();
    if odd.is_empty() {
        let worst_rtt = measured.iter().map(|(_, rtt, _)| *rtt).max().unwrap_or(0);
        out.push(check(
            "clock",
            State::Ok,
            format!(
                "within {} s of {} peers' clocks (measured to within {} ms)",
                median.unsigned_abs().div_ceil(1000),
                measured.len(),
                worst_rtt.div_ceil(2)
            ),
            None,
        ));
    } else {
        out.push(check(
            "clock",
            State::Warn,
            format!("this clock agrees with most peers, but {}", odd.join(", ")),
            Some(
                "tell those sites to set their machine's time: what they sign shows the wrong date",
            ),
        ));
    }
}

/// Envelopes claimed well in the future point to this machine's clock
/// running behind (or another site's running ahead).
fn clock(home: &Home, out: &mut Vec<Check>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let Ok(lib) = gatehouse_node::library::Library::open_for_reading(home) else {
        return;
    };
    let Ok(all) = lib.export() else {
        return;
    };
    let ahead: Vec<u64> = all
        .iter()
        .filter_map(|b| gatehouse_protocol::envelope::peek_created_ms(b))
        .filter(|&t| t > now.saturating_add(FUTURE_SLACK_MS))
        .collect();
    match ahead.iter().max() {
        None => out.push(check(
            "clock",
            State::Ok,
            "no envelope claims a time ahead of this machine's clock",
            None,
        )),
        Some(max) => out.push(check(
            "clock",
            State::Warn,
            format!(
                "{} envelopes claim times ahead of this clock, up to {} min",
                ahead.len(),
                (max - now) / 60_000
            ),
            Some("check this machine's time (timedatectl; NTP), or the clocks of the sites that made them"),
        )),
    }
}

/// The TCP address a multiaddress dials, when it has one.
fn tcp_target(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut host = None;
    let mut port = None;
    for p in addr {
        match p {
            Protocol::Ip4(ip) => host = Some(ip.to_string()),
            Protocol::Ip6(ip) => host = Some(ip.to_string()),
            Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => host = Some(h.to_string()),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    format!("{}:{}", host?, port?)
        .to_socket_addrs()
        .ok()?
        .next()
}

fn peers(home: &Home, config: &Config, out: &mut Vec<Check>) {
    let mut addresses: Vec<Multiaddr> = config.bootstrap.value.clone();
    // The peer book, from the running node or the store.
    if let Ok(Outcome::Peers(crate::ops::PeersOutcome::Listed { book, .. })) =
        dispatch(home.clone(), Op::Peers(crate::PeersCommand::List))
    {
        addresses.extend(book.into_iter().filter_map(|p| p.address.parse().ok()));
    }
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        out.push(check(
            "peers",
            State::Warn,
            "no bootstrap or remembered peer: this node finds peers by mDNS only",
            Some("add the address the network's admin gave: `gatehouse peers add /ip4/.../tcp/4001/p2p/...`"),
        ));
        return;
    }
    for addr in addresses {
        let Some(target) = tcp_target(&addr) else {
            out.push(check(
                "peer",
                State::Ok,
                format!("{addr}: not a TCP address; not tried"),
                None,
            ));
            continue;
        };
        out.push(match TcpStream::connect_timeout(&target, DIAL_TIMEOUT) {
            Ok(_) => check("peer", State::Ok, format!("{addr}: answers"), None),
            Err(e) => check(
                "peer",
                State::Warn,
                format!("{addr}: {e}"),
                Some("check the address, that the peer runs, and the firewalls between (TCP and UDP 4001)"),
            ),
        });
    }
}

fn ports(config: &Config, net: Option<&gatehouse_node::net::NetStatus>, out: &mut Vec<Check>) {
    if let Some(net) = net {
        out.push(if net.listening.is_empty() {
            check(
                "listening",
                State::Fail,
                "the running node listens on no address",
                Some("see its log (journalctl -u gatehouse)"),
            )
        } else {
            check(
                "listening",
                State::Ok,
                format!("the node listens on {}", net.listening.join(", ")),
                None,
            )
        });
        return;
    }
    for addr in &config.listen.value {
        let Some(target) = tcp_target(addr) else {
            continue;
        };
        out.push(match TcpListener::bind(target) {
            Ok(_) => check(
                "port",
                State::Ok,
                format!("{addr}: free to listen on"),
                None,
            ),
            Err(e) => check(
                "port",
                State::Fail,
                format!("{addr}: {e}"),
                Some("another program holds the port: stop it, or set network.listen to another"),
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_node::net::{NetStatus, PeerState};

    fn status(offsets_ms: &[i64]) -> NetStatus {
        let mut s = NetStatus::default();
        for (n, offset) in offsets_ms.iter().enumerate() {
            s.peers.insert(
                format!("peer{n}"),
                PeerState {
                    connected: true,
                    admitted: true,
                    establishment: Some(format!("HMP Site {n}")),
                    clock_offset_ms: Some(*offset),
                    clock_rtt_ms: Some(40),
                    ..PeerState::default()
                },
            );
        }
        s
    }

    fn clock_of(offsets_ms: &[i64]) -> Check {
        let mut out = Vec::new();
        peer_clocks(&status(offsets_ms), &mut out);
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    #[test]
    fn the_clock_is_judged_against_the_middle_of_the_peers() {
        let c = clock_of(&[1_500, -800, 200]);
        assert_eq!(c.state, State::Ok, "{c:?}");
        assert!(c.detail.contains("within 1 s of 3 peers"), "{c:?}");
        // Every peer 20 minutes ahead: this clock is behind.
        let c = clock_of(&[1_200_000, 1_199_000, 1_201_000]);
        assert_eq!(c.state, State::Warn);
        assert!(c.detail.contains("20 min behind"), "{c:?}");
        assert!(c.fix.as_deref().is_some_and(|f| f.contains("timedatectl")));
        // One peer an hour behind the rest: its clock is wrong, not this one.
        let c = clock_of(&[300, -3_600_000, -100, 50]);
        assert_eq!(c.state, State::Warn);
        assert!(c.detail.contains("HMP Site 1 is 60 min behind"), "{c:?}");
        // One or two peers: which clock is wrong cannot be told.
        let c = clock_of(&[-1_800_000]);
        assert_eq!(c.state, State::Warn);
        assert!(
            c.detail
                .contains("HMP Site 0's clock is 30 min behind this one"),
            "{c:?}"
        );
        assert!(c.detail.contains("one of the two is wrong"), "{c:?}");
        assert_eq!(clock_of(&[2_000, -1_000]).state, State::Ok);
        // Nobody measured yet.
        let c = clock_of(&[]);
        assert_eq!(c.state, State::Ok);
        assert!(c.detail.contains("no peer has told its time"), "{c:?}");
    }
}
