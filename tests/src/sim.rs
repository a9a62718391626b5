//! A deterministic simulation of a whole network in one process.
//!
//! Every node is the real sync core ([`SyncCore`]) over a real replica
//! ([`BareReplica`]: envelopes verified, stored and judged exactly as on a
//! node, in memory, without the item and search projections). Nodes
//! exchange the real sync messages over a simulated network: a
//! discrete-event queue with per-message latency and loss, connections that
//! break, partitions, nodes that go offline (for weeks) and come back, and
//! sites that join late by the real admission flow (an admin's admission,
//! an invitation holding the admin's certificates, the site's own
//! delegations made at the site). Gossip is modelled as gossipsub carries
//! it: each node forwards a message it accepted to up to
//! [`SimConfig::gossip_degree`] admitted peers, and drops copies it has
//! already seen.
//!
//! Everything random (keys, salts, latencies, losses, peer choices) comes
//! from one seeded generator, and every collection is ordered, so a seed
//! replays exactly: a failing run prints its seed, and
//! `GATEHOUSE_SIM_SEED=<seed>` runs it again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gatehouse_node::authoring::{Draft, new_item_with_salt};
use gatehouse_node::replica::Replica;
use gatehouse_node::sample::synthetic_content;
use gatehouse_node::store::MemoryStore;
use gatehouse_node::sync::{
    BareReplica, EnvelopeSet, Input, Output, RequestId, SyncConfig, SyncCore, Verdict,
};
use gatehouse_protocol::certificate::{
    Admission, Certificate, Delegation, Endorsement, Genesis, MemberRole, Revocation, RevokeTarget,
};
use gatehouse_protocol::envelope::{Body, Verified};
use gatehouse_protocol::id::{EnvelopeId, EstablishmentId, NetworkId};
use gatehouse_protocol::key::{PublicKey, SecretKey};
use gatehouse_protocol::reconcile::IdIndex;
use gatehouse_protocol::sync::{SyncRequest, SyncResponse};
use gatehouse_protocol::trust::Judgement;
use gatehouse_protocol::vocab::{Nation, Setting};

/// How the simulated network behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Shortest one-way latency of a message, ms.
    pub min_latency_ms: u64,
    /// Longest one-way latency of a message, ms.
    pub max_latency_ms: u64,
    /// Chance, in parts per million, that a message is lost.
    pub loss_ppm: u64,
    /// How long a request waits for its answer before it fails, ms.
    pub request_timeout_ms: u64,
    /// Peers each node forwards a gossip message to.
    pub gossip_degree: usize,
    /// How many existing sites a joining site is given as bootstrap
    /// besides the admin's node.
    pub bootstrap_peers: usize,
    /// The sync core's settings.
    pub sync: SyncConfig,
    /// Whether each site judges the content of every change it receives
    /// (schema, vocabulary, dates, identifiers, on the item at that change),
    /// as every real node does.
    pub content_checks: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            min_latency_ms: 5,
            max_latency_ms: 120,
            loss_ppm: 5_000,
            request_timeout_ms: 10_000,
            gossip_degree: 6,
            bootstrap_peers: 2,
            sync: SyncConfig::default(),
            content_checks: true,
        }
    }
}

/// Figures of a run.
#[derive(Debug, Clone, Default)]
pub struct SimStats {
    /// Bytes of every sync request and response sent.
    pub sync_bytes: u64,
    /// Of those, bytes of reconcile rounds.
    pub reconcile_bytes: u64,
    /// Bytes of gossip messages sent.
    pub gossip_bytes: u64,
    /// Sync messages sent.
    pub sync_messages: u64,
    /// Messages lost in transit.
    pub lost: u64,
    /// Gossip messages first published (one per new envelope gossiped).
    pub gossip_originated: u64,
    /// Gossip copies that reached a node that had already seen the message.
    pub gossip_duplicates: u64,
    /// Envelopes carried by fetch responses and pushes.
    pub envelopes_synced: u64,
    /// Sessions completed.
    pub sessions: u64,
    /// Events processed.
    pub events: u64,
    /// Fetched batches held back after the request for the next one was
    /// sent ([`Output::Store`] after an [`Output::Send`] of a fetch).
    pub fetches_overlapped: u64,
}

/// One simulated site.
pub struct SimNode {
    /// Its establishment's name.
    pub name: String,
    /// Its node key (its identity on the network).
    pub key: SecretKey,
    /// Its establishment key.
    pub establishment_key: SecretKey,
    /// Its site lead's key.
    pub member: SecretKey,
    /// Its establishment.
    pub establishment: EstablishmentId,
    /// Its envelopes.
    pub set: BareReplica,
    /// Its sync core.
    pub core: SyncCore,
    /// Whether it is running.
    pub online: bool,
    /// Sites it dials at start.
    pub bootstrap: Vec<usize>,
    /// How far its clock runs ahead of the simulation's (ms).
    pub clock_ahead_ms: u64,
    seen: BTreeSet<EnvelopeId>,
    next_tick: Option<u64>,
    suffix: [u8; 16],
}

#[derive(Debug, Clone)]
enum Event {
    Tick {
        node: usize,
    },
    Dial {
        from: usize,
        to: usize,
    },
    Gossip {
        from: usize,
        to: usize,
        epoch: u64,
        bytes: Vec<u8>,
    },
    Request {
        from: usize,
        to: usize,
        epoch: u64,
        request: RequestId,
        message: SyncRequest,
    },
    Response {
        from: usize,
        to: usize,
        epoch: u64,
        request: RequestId,
        response: SyncResponse,
    },
    Timeout {
        node: usize,
        request: RequestId,
    },
}

/// Which side of a partition a node is on.
type Side = u8;

/// A simulated network.
pub struct Sim {
    /// How it behaves.
    pub config: SimConfig,
    /// The virtual clock, ms.
    pub now_ms: u64,
    /// The sites, in joining order; site 0 founded the network.
    pub nodes: Vec<SimNode>,
    /// Figures so far.
    pub stats: SimStats,
    /// The network's admin key (held by site 0).
    pub admin: SecretKey,
    /// The network.
    pub network: NetworkId,
    rng: u64,
    queue: BTreeMap<(u64, u64), Event>,
    seq: u64,
    index: BTreeMap<PublicKey, usize>,
    /// Open connections (lower index first) and their epoch.
    links: BTreeMap<(usize, usize), u64>,
    next_epoch: u64,
    /// (node, peer) pairs where node lets peer into gossip.
    gossip_ok: BTreeSet<(usize, usize)>,
    /// Requests in flight: (requester, request) → (responder, epoch).
    outstanding: BTreeMap<(usize, RequestId), (usize, u64)>,
    /// Inbound requests awaiting their answer: token → (requester, responder, request, epoch).
    inbound: BTreeMap<u64, (usize, usize, RequestId, u64)>,
    /// Gossip messages awaiting a verdict: token → (receiver, sender, bytes).
    verdicts: BTreeMap<u64, (usize, usize, Vec<u8>)>,
    next_token: u64,
    partition: Option<Vec<Side>>,
    items: u64,
}

fn address_of(i: usize) -> String {
    format!("sim/{i}")
}

fn index_of_address(address: &str) -> Option<usize> {
    address.strip_prefix("sim/")?.parse().ok()
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

fn response_len(r: &SyncResponse) -> u64 {
    r.encode().len() as u64
}

impl Sim {
    /// A network founded by one site (site 0, holding the admin key).
    pub fn new(config: SimConfig) -> Self {
        let mut rng = config.seed ^ 0x005E_ED0F_6A7E_4005;
        let admin = SecretKey::from_seed(random_seed(&mut rng));
        let genesis = Genesis {
            name: "Simulated network".into(),
            admins: vec![admin.public()],
            threshold: 1,
            nonce: random_seed(&mut rng)[..16].try_into().unwrap_or([0; 16]),
        };
        let network = genesis.network_id();
        let mut sim = Self {
            config,
            now_ms: 0,
            nodes: Vec::new(),
            stats: SimStats::default(),
            admin,
            network,
            rng,
            queue: BTreeMap::new(),
            seq: 0,
            index: BTreeMap::new(),
            links: BTreeMap::new(),
            next_epoch: 1,
            gossip_ok: BTreeSet::new(),
            outstanding: BTreeMap::new(),
            inbound: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            next_token: 1,
            partition: None,
            items: 0,
        };
        let genesis = Verified::sign(
            Body::Certificate(Certificate::Genesis(genesis)),
            &sim.admin,
            &network,
            0,
        );
        sim.add_site(vec![genesis]);
        sim
    }

    fn random(&mut self) -> u64 {
        splitmix(&mut self.rng)
    }

    fn chance_ppm(&mut self, ppm: u64) -> bool {
        self.random() % 1_000_000 < ppm
    }

    fn latency(&mut self) -> u64 {
        let spread = self.config.max_latency_ms - self.config.min_latency_ms + 1;
        self.config.min_latency_ms + self.random() % spread
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at_ms, self.seq), event);
    }

    fn certificate(&self, cert: Certificate, key: &SecretKey) -> Verified {
        Verified::sign(Body::Certificate(cert), key, &self.network, self.now_ms)
    }

    /// Admits a new site: the admin (at site 0) admits its establishment;
    /// the site starts from an invitation holding site 0's certificates and
    /// its own delegations, and dials site 0 and a few earlier sites.
    /// Returns its index.
    pub fn join(&mut self) -> usize {
        self.add_site(Vec::new())
    }

    /// Site 0's certificates, as an invitation carries them.
    fn invitation(&self) -> Vec<Verified> {
        self.certificate_bytes(0)
            .iter()
            .filter_map(|b| gatehouse_protocol::envelope::Envelope::open(b, &self.network).ok())
            .collect()
    }

    /// Adds a site; the founder (the first) starts from `founding`, every
    /// other from an invitation made after the admin admitted it.
    fn add_site(&mut self, founding: Vec<Verified>) -> usize {
        let i = self.nodes.len();
        let key = SecretKey::from_seed(random_seed(&mut self.rng));
        let establishment_key = SecretKey::from_seed(random_seed(&mut self.rng));
        let member = SecretKey::from_seed(random_seed(&mut self.rng));
        let establishment = EstablishmentId(
            random_seed(&mut self.rng)[..16]
                .try_into()
                .unwrap_or([0; 16]),
        );
        let suffix: [u8; 16] = random_seed(&mut self.rng)[..16]
            .try_into()
            .unwrap_or([0; 16]);
        let name = format!("HMP Sim {i}");
        let admission = self.certificate(
            Certificate::Admit(Admission {
                establishment,
                key: establishment_key.public(),
                name: name.clone(),
                setting: Setting::PrisonCatC,
                nation: Nation::England,
            }),
            &self.admin,
        );
        let mut own = founding;
        if i == 0 {
            own.push(admission);
        } else {
            // The admin's node holds the admission first and gossips it;
            // the invitation is made from what it then holds.
            self.local(0, vec![admission]);
            own = self.invitation();
        }
        for (who, role) in [(&member, MemberRole::Person), (&key, MemberRole::Device)] {
            own.push(self.certificate(
                Certificate::Delegate(Delegation {
                    establishment,
                    member: who.public(),
                    name: format!("{name} {role:?}"),
                    role,
                }),
                &establishment_key,
            ));
        }
        let set = bare_replica(self.network, &key, own, self.config.content_checks);
        let core = SyncCore::new(self.config.sync.clone(), self.random(), &set);
        let mut bootstrap = Vec::new();
        if i > 0 {
            bootstrap.push(0);
            for _ in 0..self.config.bootstrap_peers.min(i - 1) {
                let pick = 1 + (self.random() % (i as u64 - 1)) as usize;
                if !bootstrap.contains(&pick) {
                    bootstrap.push(pick);
                }
            }
        }
        self.index.insert(key.public(), i);
        self.nodes.push(SimNode {
            name,
            key,
            establishment_key,
            member,
            establishment,
            set,
            core,
            online: true,
            bootstrap,
            seen: BTreeSet::new(),
            next_tick: None,
            clock_ahead_ms: 0,
            suffix,
        });
        self.start(i);
        i
    }

    /// Starts (or restarts) a site's core: it remembers its bootstrap
    /// addresses and runs its timers.
    fn start(&mut self, i: usize) {
        let addresses: Vec<String> = self.nodes[i]
            .bootstrap
            .iter()
            .map(|b| address_of(*b))
            .collect();
        for address in addresses {
            self.input(i, Input::Remember { address });
        }
        self.input(i, Input::Tick);
    }

    /// The bytes of every certificate site `i` holds.
    pub fn certificate_bytes(&self, i: usize) -> Vec<Vec<u8>> {
        self.nodes[i]
            .set
            .replica
            .certificate_bytes()
            .unwrap_or_default()
    }

    /// Stores envelopes made at site `i` and gossips them.
    fn local(&mut self, i: usize, envelopes: Vec<Verified>) {
        let bytes: Vec<Vec<u8>> = envelopes.iter().map(|e| e.bytes().to_vec()).collect();
        let node = &mut self.nodes[i];
        for env in envelopes {
            if let Err(e) = node.set.replica.accept(env) {
                panic!("site {i} cannot store its own envelope: {e}");
            }
        }
        if let Err(e) = node.set.replica.settle() {
            panic!("site {i} cannot settle: {e}");
        }
        node.set.replica.take_outbox();
        self.input(i, Input::TrustChanged);
        self.input(i, Input::Publish { envelopes: bytes });
    }

    /// Site `i`'s lead publishes a new item; returns its envelope id.
    pub fn publish(&mut self, i: usize) -> EnvelopeId {
        self.items += 1;
        let content = synthetic_content(self.items);
        let salt: [u8; 16] = random_seed(&mut self.rng)[..16]
            .try_into()
            .unwrap_or([0; 16]);
        let node = &self.nodes[i];
        let env = match new_item_with_salt(
            Draft {
                content: &content,
                allowed: &[],
                adoption: None,
                attachments: &[],
            },
            &node.member,
            &node.suffix,
            node.establishment,
            &self.network,
            self.now_ms,
            salt,
        ) {
            Ok(e) => e,
            Err(e) => panic!("cannot make an item: {e}"),
        };
        let id = env.id();
        self.local(i, vec![env]);
        id
    }

    /// Site `i`'s lead signs an envelope of a kind no node here reads (as
    /// a later version would), and gossips it; returns its id.
    pub fn publish_unread(&mut self, i: usize) -> EnvelopeId {
        let env = Verified::sign(
            Body::Unread {
                kind: 9,
                payload: format!("a later kind, from site {i} at {}", self.now_ms).into_bytes(),
            },
            &self.nodes[i].member,
            &self.network,
            self.now_ms,
        );
        let id = env.id();
        self.local(i, vec![env]);
        id
    }

    /// The admin revokes site `i`'s lead's key as compromised (nothing it
    /// signed stays valid), at site 0.
    pub fn revoke_member(&mut self, i: usize) -> EnvelopeId {
        let cert = self.certificate(
            Certificate::Revoke(Revocation {
                target: RevokeTarget::Key(self.nodes[i].member.public()),
                keep: Vec::new(),
                reason: "key compromised".into(),
            }),
            &self.admin,
        );
        let id = cert.id();
        self.local(0, vec![cert]);
        id
    }

    /// Takes site `i` offline: its connections drop and it hears nothing.
    pub fn go_offline(&mut self, i: usize) {
        self.drop_links_of(i);
        self.nodes[i].online = false;
        self.nodes[i].next_tick = None;
    }

    /// Brings site `i` back, as a restarted process (a fresh core over the
    /// replica it kept).
    pub fn come_back(&mut self, i: usize) {
        self.restart(i);
        self.start(i);
    }

    /// Brings site `i` back as [`Sim::come_back`] does, but dialling no one.
    pub fn come_back_quietly(&mut self, i: usize) {
        self.restart(i);
        self.input(i, Input::Tick);
    }

    /// Site `i` online again with a fresh core over the replica it kept.
    fn restart(&mut self, i: usize) {
        let seed = self.random();
        let node = &mut self.nodes[i];
        node.online = true;
        node.seen.clear();
        node.core = SyncCore::new(self.config.sync.clone(), seed, &node.set);
    }

    /// Connects sites `a` and `b` as two nodes that dialled each other at
    /// the same instant do: each side's first connection is its own dial,
    /// so each takes itself for the dialer. False if they are connected.
    pub fn dial_both(&mut self, a: usize, b: usize) -> bool {
        if self.links.contains_key(&pair(a, b)) || !self.nodes[a].online || !self.nodes[b].online {
            return false;
        }
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.links.insert(pair(a, b), epoch);
        for (from, to) in [(a, b), (b, a)] {
            let peer = self.nodes[to].key.public();
            self.input(
                from,
                Input::Connected {
                    peer,
                    address: address_of(to),
                    dialer: true,
                    named: true,
                },
            );
        }
        true
    }

    /// Splits the network: each site's side is `side(i)`; connections
    /// across are cut and nothing crosses until [`Sim::heal`].
    pub fn partition(&mut self, side: impl Fn(usize) -> Side) {
        let sides: Vec<Side> = (0..self.nodes.len()).map(side).collect();
        let cut: Vec<(usize, usize)> = self
            .links
            .keys()
            .filter(|(a, b)| sides[*a] != sides[*b])
            .copied()
            .collect();
        self.partition = Some(sides);
        for (a, b) in cut {
            self.drop_link(a, b);
        }
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        self.partition = None;
    }

    fn apart(&self, a: usize, b: usize) -> bool {
        self.partition
            .as_ref()
            .is_some_and(|s| s.get(a) != s.get(b))
    }

    fn drop_links_of(&mut self, i: usize) {
        let mine: Vec<(usize, usize)> = self
            .links
            .keys()
            .filter(|(a, b)| *a == i || *b == i)
            .copied()
            .collect();
        for (a, b) in mine {
            self.drop_link(a, b);
        }
    }

    fn drop_link(&mut self, a: usize, b: usize) {
        if self.links.remove(&pair(a, b)).is_none() {
            return;
        }
        self.gossip_ok.remove(&(a, b));
        self.gossip_ok.remove(&(b, a));
        let failed: Vec<(usize, RequestId)> = self
            .outstanding
            .iter()
            .filter(|((from, _), (to, _))| pair(*from, *to) == pair(a, b))
            .map(|(k, _)| *k)
            .collect();
        for (node, request) in failed {
            self.outstanding.remove(&(node, request));
            if self.nodes[node].online {
                self.input(node, Input::RequestFailed { request });
            }
        }
        for (x, y) in [(a, b), (b, a)] {
            if self.nodes[x].online {
                let peer = self.nodes[y].key.public();
                self.input(x, Input::Disconnected { peer });
            }
        }
    }

    /// Gives site `i` one input and carries out its outputs.
    fn input(&mut self, i: usize, input: Input) {
        if !self.nodes[i].online {
            return;
        }
        let node = &mut self.nodes[i];
        // The core reads the site's own clock.
        let now = self.now_ms + node.clock_ahead_ms;
        let outputs = node.core.handle(input, now, &mut node.set);
        let mut asked = false;
        for o in &outputs {
            match o {
                Output::Send {
                    message: SyncRequest::Fetch(_),
                    ..
                } => asked = true,
                Output::Store if asked => self.stats.fetches_overlapped += 1,
                _ => {}
            }
        }
        for output in outputs {
            self.output(i, output);
        }
        self.schedule_tick(i);
    }

    fn schedule_tick(&mut self, i: usize) {
        let Some(deadline) = self.nodes[i].core.next_deadline() else {
            return;
        };
        // Its deadlines are by its own clock.
        let deadline = deadline.saturating_sub(self.nodes[i].clock_ahead_ms);
        let at = deadline.max(self.now_ms + 1);
        if self.nodes[i]
            .next_tick
            .is_some_and(|t| t <= at && t > self.now_ms)
        {
            return;
        }
        self.nodes[i].next_tick = Some(at);
        self.schedule(at, Event::Tick { node: i });
    }

    fn peer_index(&self, key: &PublicKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    fn output(&mut self, i: usize, output: Output) {
        let now = self.now_ms;
        match output {
            Output::Send {
                peer,
                request,
                message,
            } => {
                let Some(j) = self.peer_index(&peer) else {
                    return;
                };
                let Some(&epoch) = self.links.get(&pair(i, j)) else {
                    self.schedule(now + 1, Event::Timeout { node: i, request });
                    self.outstanding.insert((i, request), (j, 0));
                    return;
                };
                let len = message.encode().len() as u64;
                self.stats.sync_bytes += len;
                self.stats.sync_messages += 1;
                match &message {
                    SyncRequest::Reconcile(_) => self.stats.reconcile_bytes += len,
                    SyncRequest::Push(e) => self.stats.envelopes_synced += e.len() as u64,
                    SyncRequest::Fetch(_) | SyncRequest::Clock | SyncRequest::Urgent(_) => {}
                }
                self.outstanding.insert((i, request), (j, epoch));
                let timeout = now + self.config.request_timeout_ms;
                self.schedule(timeout, Event::Timeout { node: i, request });
                if self.chance_ppm(self.config.loss_ppm) {
                    self.stats.lost += 1;
                    return;
                }
                let at = now + self.latency();
                self.schedule(
                    at,
                    Event::Request {
                        from: i,
                        to: j,
                        epoch,
                        request,
                        message,
                    },
                );
            }
            Output::Respond { inbound, response } => {
                let Some((requester, responder, request, epoch)) = self.inbound.remove(&inbound)
                else {
                    return;
                };
                let len = response_len(&response);
                self.stats.sync_bytes += len;
                self.stats.sync_messages += 1;
                match &response {
                    SyncResponse::Reconcile(_) => self.stats.reconcile_bytes += len,
                    SyncResponse::Envelopes(e) => self.stats.envelopes_synced += e.len() as u64,
                    _ => {}
                }
                if self.chance_ppm(self.config.loss_ppm) {
                    self.stats.lost += 1;
                    return;
                }
                let at = now + self.latency();
                self.schedule(
                    at,
                    Event::Response {
                        from: responder,
                        to: requester,
                        epoch,
                        request,
                        response,
                    },
                );
            }
            Output::Verdict {
                message, verdict, ..
            } => {
                let Some((receiver, sender, bytes)) = self.verdicts.remove(&message) else {
                    return;
                };
                if verdict == Verdict::Accept {
                    self.forward(receiver, Some(sender), bytes);
                }
            }
            Output::Publish { bytes } => {
                self.stats.gossip_originated += 1;
                self.nodes[i].seen.insert(EnvelopeId::of(&bytes));
                self.forward(i, None, bytes);
            }
            Output::Dial { address } => {
                let Some(j) = index_of_address(&address) else {
                    return;
                };
                if j != i && j < self.nodes.len() {
                    let at = now + self.latency();
                    self.schedule(at, Event::Dial { from: i, to: j });
                }
            }
            Output::Disconnect { peer } => {
                if let Some(j) = self.peer_index(&peer) {
                    self.drop_link(i, j);
                }
            }
            Output::Admitted { peer } => {
                if let Some(j) = self.peer_index(&peer) {
                    self.gossip_ok.insert((i, j));
                }
            }
            Output::Barred { peer } => {
                if let Some(j) = self.peer_index(&peer) {
                    self.gossip_ok.remove(&(i, j));
                }
            }
            Output::Synced { .. } => self.stats.sessions += 1,
            // The requests before it are already on their way.
            Output::Store => self.input(i, Input::Store),
        }
    }

    /// Sends a gossip message on from `i` to up to `gossip_degree` of the
    /// peers it admits, other than the one it came from.
    fn forward(&mut self, i: usize, from: Option<usize>, bytes: Vec<u8>) {
        let mut peers: Vec<usize> = self
            .gossip_ok
            .range((i, 0)..(i + 1, 0))
            .map(|(_, j)| *j)
            .filter(|j| Some(*j) != from && self.links.contains_key(&pair(i, *j)))
            .collect();
        // A seeded shuffle, then the first few.
        for k in (1..peers.len()).rev() {
            let swap = (self.random() % (k as u64 + 1)) as usize;
            peers.swap(k, swap);
        }
        peers.truncate(self.config.gossip_degree);
        for j in peers {
            self.send_gossip(i, j, bytes.clone());
        }
    }

    /// Sends one gossip copy from `i` to `j` over their connection, if
    /// any, unless the network loses it.
    fn send_gossip(&mut self, i: usize, j: usize, bytes: Vec<u8>) {
        let Some(&epoch) = self.links.get(&pair(i, j)) else {
            return;
        };
        self.stats.gossip_bytes += bytes.len() as u64;
        if self.chance_ppm(self.config.loss_ppm) {
            self.stats.lost += 1;
            return;
        }
        let at = self.now_ms + self.latency();
        self.schedule(
            at,
            Event::Gossip {
                from: i,
                to: j,
                epoch,
                bytes,
            },
        );
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn link_alive(&self, a: usize, b: usize, epoch: u64) -> bool {
        self.links.get(&pair(a, b)) == Some(&epoch) && self.nodes[a].online && self.nodes[b].online
    }

    fn deliver(&mut self, event: Event) {
        self.stats.events += 1;
        match event {
            Event::Tick { node } => {
                if self.nodes[node].next_tick == Some(self.now_ms) {
                    self.nodes[node].next_tick = None;
                    self.input(node, Input::Tick);
                }
            }
            Event::Dial { from, to } => {
                let ok = self.nodes[from].online
                    && self.nodes[to].online
                    && !self.apart(from, to)
                    && !self.links.contains_key(&pair(from, to));
                if !ok {
                    return;
                }
                let epoch = self.next_epoch;
                self.next_epoch += 1;
                self.links.insert(pair(from, to), epoch);
                let (kf, kt) = (self.nodes[from].key.public(), self.nodes[to].key.public());
                self.input(
                    from,
                    Input::Connected {
                        peer: kt,
                        address: address_of(to),
                        dialer: true,
                        // A simulated address names its node.
                        named: true,
                    },
                );
                self.input(
                    to,
                    Input::Connected {
                        peer: kf,
                        address: format!("{}/in", address_of(from)),
                        dialer: false,
                        named: false,
                    },
                );
            }
            Event::Gossip {
                from,
                to,
                epoch,
                bytes,
            } => {
                if !self.link_alive(from, to, epoch) {
                    return;
                }
                if !self.nodes[to].seen.insert(EnvelopeId::of(&bytes)) {
                    self.stats.gossip_duplicates += 1;
                    return;
                }
                let token = self.token();
                self.verdicts.insert(token, (to, from, bytes.clone()));
                let peer = self.nodes[from].key.public();
                self.input(
                    to,
                    Input::Gossip {
                        from: peer,
                        message: token,
                        bytes,
                    },
                );
                self.verdicts.remove(&token);
            }
            Event::Request {
                from,
                to,
                epoch,
                request,
                message,
            } => {
                if !self.link_alive(from, to, epoch) {
                    return;
                }
                let token = self.token();
                self.inbound.insert(token, (from, to, request, epoch));
                let peer = self.nodes[from].key.public();
                self.input(
                    to,
                    Input::Request {
                        peer,
                        inbound: token,
                        request: message,
                    },
                );
                self.inbound.remove(&token);
            }
            Event::Response {
                from,
                to,
                epoch,
                request,
                response,
            } => {
                if !self.link_alive(from, to, epoch)
                    || self.outstanding.remove(&(to, request)).is_none()
                {
                    return;
                }
                self.input(to, Input::Response { request, response });
            }
            Event::Timeout { node, request } => {
                if self.outstanding.remove(&(node, request)).is_some() {
                    self.input(node, Input::RequestFailed { request });
                }
            }
        }
    }

    /// Runs events until `until_ms` (virtual time).
    pub fn run_until(&mut self, until_ms: u64) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until_ms {
                break;
            }
            let ((at, _), event) = entry.remove_entry();
            self.now_ms = at;
            self.deliver(event);
        }
        self.now_ms = self.now_ms.max(until_ms);
    }

    /// Runs for `ms` of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        self.run_until(until);
    }

    /// Runs until every online site holds the same envelopes, checking
    /// every `step_ms`; returns the virtual time it took, or `None` if not
    /// by `limit_ms`.
    pub fn run_until_converged(&mut self, step_ms: u64, limit_ms: u64) -> Option<u64> {
        let started = self.now_ms;
        loop {
            if self.converged() {
                return Some(self.now_ms - started);
            }
            if self.now_ms - started >= limit_ms {
                return None;
            }
            self.run_for(step_ms);
        }
    }

    /// The sorted envelope ids site `i` holds.
    pub fn ids(&mut self, i: usize) -> Vec<EnvelopeId> {
        self.nodes[i]
            .set
            .ids()
            .map(IdIndex::to_vec)
            .unwrap_or_default()
    }

    /// Whether every online site holds the same envelopes.
    pub fn converged(&mut self) -> bool {
        let online: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].online)
            .collect();
        let Some(&first) = online.first() else {
            return true;
        };
        let reference = self.ids(first);
        online.iter().all(|i| self.ids(*i) == reference)
    }

    /// The judgement site `i` holds of envelope `id`.
    pub fn judgement(&self, i: usize, id: &EnvelopeId) -> Option<Judgement> {
        let r = &self.nodes[i].set.replica;
        match r.has_envelope(id) {
            Ok(true) => r.judgement_of(id).ok(),
            _ => None,
        }
    }

    /// Whether site `i` admits site `j`'s node.
    pub fn admits(&self, i: usize, j: usize) -> bool {
        self.nodes[i]
            .set
            .admitted()
            .contains_key(&self.nodes[j].key.public())
    }

    /// Adds a node that holds the network's certificates (from site 0) but
    /// whose key nobody delegated; it dials `targets`. Returns its index.
    pub fn add_rogue(&mut self, targets: Vec<usize>) -> usize {
        let invitation = self.invitation();
        let i = self.nodes.len();
        let key = SecretKey::from_seed(random_seed(&mut self.rng));
        let set = bare_replica(self.network, &key, invitation, self.config.content_checks);
        let core = SyncCore::new(self.config.sync.clone(), self.random(), &set);
        self.index.insert(key.public(), i);
        self.nodes.push(SimNode {
            name: "rogue".into(),
            establishment_key: SecretKey::from_seed(random_seed(&mut self.rng)),
            member: SecretKey::from_seed(random_seed(&mut self.rng)),
            establishment: EstablishmentId([0xEE; 16]),
            key,
            set,
            core,
            online: true,
            bootstrap: targets,
            seen: BTreeSet::new(),
            next_tick: None,
            clock_ahead_ms: 0,
            suffix: [0xEE; 16],
        });
        self.start(i);
        i
    }

    /// Site `i` pushes `envelopes` to site `j` as they are, outside its
    /// sync core (a modified node); the answer is dropped. False when the
    /// two are not connected.
    pub fn push_raw(&mut self, i: usize, j: usize, envelopes: Vec<Vec<u8>>) -> bool {
        let Some(&epoch) = self.links.get(&pair(i, j)) else {
            return false;
        };
        let at = self.now_ms + self.latency();
        // An id its core never issued: the answer matches nothing.
        let request = RequestId::MAX - self.seq;
        self.schedule(
            at,
            Event::Request {
                from: i,
                to: j,
                epoch,
                request,
                message: SyncRequest::Push(envelopes),
            },
        );
        true
    }

    /// Junk a stranger might push: `n` each of revocations of itself, of
    /// keys nobody knows, and endorsements of nothing, signed by site `i`'s
    /// node key.
    pub fn junk_certificates(&self, i: usize, n: usize) -> Vec<Vec<u8>> {
        let key = &self.nodes[i].key;
        let mut out = Vec::new();
        for k in 0..n {
            let revoke = |target: PublicKey| {
                Certificate::Revoke(Revocation {
                    target: RevokeTarget::Key(target),
                    keep: Vec::new(),
                    reason: format!("junk {k}"),
                })
            };
            let nobody =
                SecretKey::from_seed([u8::try_from(k % 200).unwrap_or(0) + 1; 32]).public();
            let mut target = [0u8; 32];
            target[..8].copy_from_slice(&(k as u64).to_be_bytes());
            for cert in [
                revoke(key.public()),
                revoke(nobody),
                Certificate::Endorse(Endorsement {
                    target: EnvelopeId(target),
                }),
            ] {
                out.push(self.certificate(cert, key).bytes().to_vec());
            }
        }
        out
    }

    /// Site `i` gossips `bytes` as they are, to every peer it is connected
    /// to (an admitted node gone bad, or a broken one).
    pub fn gossip_raw(&mut self, i: usize, bytes: Vec<u8>) {
        let peers: Vec<usize> = self
            .links
            .keys()
            .filter_map(|(a, b)| {
                if *a == i {
                    Some(*b)
                } else if *b == i {
                    Some(*a)
                } else {
                    None
                }
            })
            .collect();
        for j in peers {
            self.send_gossip(i, j, bytes.clone());
        }
    }

    /// Whether sites `a` and `b` are connected.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.links.contains_key(&pair(a, b))
    }

    /// Starts counting figures afresh (after a scenario's set-up).
    pub fn reset_stats(&mut self) {
        self.stats = SimStats::default();
        for n in &mut self.nodes {
            n.set.received = 0;
        }
    }

    /// New envelopes sites stored from peers since the figures were reset.
    pub fn envelopes_gained(&self) -> u64 {
        self.nodes.iter().map(|n| n.set.received).sum()
    }

    /// Whether site `i` lets site `j` into gossip (it admitted it).
    pub fn lets_in(&self, i: usize, j: usize) -> bool {
        self.gossip_ok.contains(&(i, j))
    }

    /// A summary line of the run's figures since they were reset.
    pub fn figures(&self, converge_ms: Option<u64>) -> String {
        let online = self.nodes.iter().filter(|n| n.online).count().max(1) as f64;
        let gained = self.envelopes_gained();
        let s = &self.stats;
        let per_envelope = |bytes: u64| {
            if gained == 0 {
                0.0
            } else {
                bytes as f64 / gained as f64
            }
        };
        let duplicates = if s.gossip_originated == 0 {
            0.0
        } else {
            s.gossip_duplicates as f64 / (online * s.gossip_originated as f64)
        };
        format!(
            "seed {} | {} sites | converged in {} | {} envelopes gained by sites | per envelope gained: {:.0} B of sync, of which {:.0} B reconcile, and {:.0} B of gossip | gossip duplicates {:.2} per node per message | {} sessions, {} sync messages, {} lost, {} events",
            self.config.seed,
            self.nodes.len(),
            converge_ms.map_or("never".to_string(), |ms| format!(
                "{:.1} s",
                ms as f64 / 1000.0
            )),
            gained,
            per_envelope(s.sync_bytes),
            per_envelope(s.reconcile_bytes),
            per_envelope(s.gossip_bytes),
            duplicates,
            s.sessions,
            s.sync_messages,
            s.lost,
            s.events,
        )
    }
}

/// A replica in memory holding `envelopes`, for the node whose key is `key`.
fn bare_replica(
    network: NetworkId,
    key: &SecretKey,
    envelopes: Vec<Verified>,
    content_checks: bool,
) -> BareReplica {
    let store = Arc::new(MemoryStore::new());
    let mut replica = match Replica::open(store, network) {
        Ok(r) => r,
        Err(e) => panic!("an in-memory replica cannot fail to open: {e}"),
    };
    replica.judge_content(content_checks);
    let mut set = BareReplica {
        replica,
        node: key.public(),
        received: 0,
    };
    for env in envelopes {
        if let Err(e) = set.replica.accept(env) {
            panic!("a site cannot store its own envelopes: {e}");
        }
    }
    if let Err(e) = set.replica.settle() {
        panic!("a site cannot settle: {e}");
    }
    set.replica.take_outbox();
    set
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_seed(state: &mut u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix(state).to_be_bytes());
    }
    out
}

/// The seed of a run: `GATEHOUSE_SIM_SEED` if set, else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("GATEHOUSE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

impl Sim {
    /// A line about site `i`'s connections and sessions, for failure reports.
    pub fn describe(&self, i: usize) -> String {
        let links: Vec<String> = self
            .links
            .keys()
            .filter(|(a, b)| *a == i || *b == i)
            .map(|(a, b)| {
                let j = if *a == i { *b } else { *a };
                let key = self.nodes[j].key.public();
                let stats = self.nodes[i].core.status().peers.get(&key);
                format!(
                    "{j}{}(last sync {:?}, in session {})",
                    if self.lets_in(i, j) { "" } else { " barred" },
                    stats.and_then(|s| s.last_sync_ms).map(|t| t / 1000),
                    self.nodes[i].core.in_session(&key)
                )
            })
            .collect();
        format!(
            "site {i} (bootstrap {:?}, next tick {:?}): {}",
            self.nodes[i].bootstrap,
            self.nodes[i].next_tick.map(|t| t / 1000),
            links.join(", ")
        )
    }
}
