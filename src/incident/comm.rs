//! The communication graph of training jobs, learned from NCCL's own log lines: the ring
//! order of each channel (`NCCL INFO Channel 00/02 :  0 1 2 3`), each rank's parent in the
//! tree (`NCCL INFO Trees [0] 1/-1/-1->0->-1`), the host each rank runs on, and which ranks
//! reported network failures (`NCCL WARN NET/...`). NCCL prints its topology once, when a
//! communicator starts, so it is kept — bounded — for as long as the job logs anything.
//!
//! It names the **blocking link** of a training incident: when the top suspect is a rank
//! that reported network failures, the link from it to the one neighbour it sends to on
//! another node.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, AsArray, StringArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::rules::ExtraTable;

/// The `ranks` table incident indicators may read: where every known training rank runs
/// (`service`, `rank`, `host`, `cuda_device`, `bus_id`, all text), so GPU series (by host
/// and device) can be joined to the rank that uses the GPU.
pub fn ranks_table() -> ExtraTable {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        Arc::new(Schema::new(vec![
            text("service", false),
            text("rank", false),
            text("host", false),
            text("cuda_device", true),
            text("bus_id", true),
        ]))
    });
    ("ranks", schema.clone())
}

/// Jobs (services) kept at most; the least recently active are forgotten first.
const MAX_JOBS: usize = 256;
/// Ranks kept per job at most (a bound on pathological input).
const MAX_RANKS: usize = 65_536;
/// Characters of a failure message kept as a link's evidence.
const MAX_EVIDENCE: usize = 200;

/// Where a rank runs: its host and GPU (from NCCL's `Init COMPLETE` line), so an operator
/// knows which machine and device to look at — and which NVML/DCGM series are its.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub host: String,
    /// The CUDA device index the rank's process uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_device: Option<u32>,
    /// Its PCI bus id as NCCL prints it (`3b000` for `0000:3b:00.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus_id: Option<String>,
}

/// The link a training incident's top suspect sends over, where the network failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockingLink {
    /// The sending rank (`<service>/rank<N>`), the top suspect.
    pub from: String,
    /// The rank it sends to on another node.
    pub to: String,
    /// `ring` (the next rank of a channel's ring) or `tree` (its parent).
    pub via: &'static str,
    /// The sender's first NCCL network warning.
    pub evidence: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RankLinks {
    host: Option<String>,
    /// Channel -> (ring size, the next rank); the largest ring per channel (the world
    /// communicator's: a subgroup's ring lists fewer, group-local ranks).
    ring_next: BTreeMap<u32, (usize, u32)>,
    /// The parent in the tree of channel 0 (the first tree line that names this rank).
    tree_up: Option<u32>,
    /// The first NCCL network warning this rank logged.
    net_warning: Option<String>,
    /// `(cuda device, bus id)` from a communicator's `Init COMPLETE` line (a process uses
    /// one GPU, so any of its communicators' lines tells it).
    device: Option<(u32, String)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Job {
    ranks: BTreeMap<u32, RankLinks>,
    /// The learning step that last touched the job (for forgetting the idlest).
    seen: u64,
}

/// Per job (service), what its NCCL lines said about each rank.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommGraph {
    jobs: BTreeMap<String, Job>,
    step: u64,
}

/// The `logs` columns [`CommGraph::learn`] reads (built whatever the queries read).
pub const LOG_COLUMNS: [&str; 4] = ["body", "service", "host", "attributes"];

/// One log line's columns as the learner reads them.
struct Line<'a> {
    service: &'a str,
    rank: Option<u32>,
    host: Option<&'a str>,
    body: &'a str,
}

impl CommGraph {
    /// Learns from one window's `logs` table. Windows without NCCL lines cost one search
    /// of the body column's bytes.
    pub fn learn(&mut self, logs: &RecordBatch) {
        let [Some(body), Some(service), Some(host), Some(attributes)] =
            LOG_COLUMNS.map(|c| logs.column_by_name(c))
        else {
            return;
        };
        let body = body.as_string::<i32>();
        if memchr::memmem::find(body.values(), b"NCCL ").is_none() {
            return;
        }
        self.step += 1;
        let (service, host) = (service.as_string::<i32>(), host.as_string::<i32>());
        let attributes = attributes.as_map();
        for row in 0..logs.num_rows() {
            if service.is_null(row) || !body.value(row).contains("NCCL ") {
                continue;
            }
            let entries = attributes.value(row);
            let keys = entries.column(0).as_string::<i32>();
            let values: &StringArray = entries.column(1).as_string::<i32>();
            let rank = (0..keys.len())
                .find(|&i| keys.value(i) == "rank" && !values.is_null(i))
                .and_then(|i| values.value(i).parse().ok());
            self.learn_line(&Line {
                service: service.value(row),
                rank,
                host: (!host.is_null(row)).then(|| host.value(row)),
                body: body.value(row),
            });
        }
        self.forget_idlest();
    }

    fn learn_line(&mut self, line: &Line<'_>) {
        let tree = tree_line(line.body);
        // A tree line names its own rank; a ring line only in the record's attributes.
        let Some(rank) = line.rank.or(tree.map(|(rank, _)| rank)) else {
            return;
        };
        let step = self.step;
        let job = self.jobs.entry(line.service.to_string()).or_default();
        job.seen = step;
        if job.ranks.len() >= MAX_RANKS && !job.ranks.contains_key(&rank) {
            return;
        }
        let links = job.ranks.entry(rank).or_default();
        if let Some(host) = line.host {
            links.host = Some(host.to_string());
        }
        if let Some((channel, ring)) = ring_line(line.body) {
            let next = ring
                .iter()
                .position(|&r| r == rank)
                .map(|i| ring[(i + 1) % ring.len()]);
            let larger = |known: &(usize, u32)| ring.len() > known.0;
            if let Some(next) = next.filter(|&n| n != rank) {
                if links.ring_next.get(&channel).is_none_or(larger) {
                    links.ring_next.insert(channel, (ring.len(), next));
                }
            }
        }
        if let Some((named, up)) = tree {
            if named == rank && links.tree_up.is_none() {
                links.tree_up = up;
            }
        }
        if line.rank.is_some() && links.device.is_none() {
            links.device = device_line(line.body);
        }
        if links.net_warning.is_none() && line.body.contains("NCCL WARN NET/") {
            let at = line.body.find("NCCL WARN").unwrap_or(0);
            let text: String = line.body[at..].chars().take(MAX_EVIDENCE).collect();
            links.net_warning = Some(text);
        }
    }

    fn forget_idlest(&mut self) {
        while self.jobs.len() > MAX_JOBS {
            let idlest = self
                .jobs
                .iter()
                .min_by_key(|(name, job)| (job.seen, name.to_string()))
                .map(|(name, _)| name.clone());
            match idlest {
                Some(name) => self.jobs.remove(&name),
                None => break,
            };
        }
    }

    /// Every rank whose host is known, as the `ranks` table.
    pub fn ranks_batch(&self) -> RecordBatch {
        let mut columns: [StringBuilder; 5] = Default::default();
        for (service, job) in &self.jobs {
            for (rank, links) in &job.ranks {
                let Some(host) = &links.host else { continue };
                columns[0].append_value(service);
                columns[1].append_value(rank.to_string());
                columns[2].append_value(host);
                columns[3].append_option(links.device.as_ref().map(|(d, _)| d.to_string()));
                columns[4].append_option(links.device.as_ref().map(|(_, b)| b.as_str()));
            }
        }
        let columns = columns
            .into_iter()
            .map(|mut c| Arc::new(c.finish()) as _)
            .collect();
        RecordBatch::try_new(ranks_table().1, columns).expect("the ranks table's own schema")
    }

    /// Where `entity` (`<service>/rank<N>`) runs, when its lines said so.
    pub fn placement(&self, entity: &str) -> Option<Placement> {
        let (service, rank) = entity.rsplit_once("/rank")?;
        let links = self
            .jobs
            .get(service)?
            .ranks
            .get(&rank.parse::<u32>().ok()?)?;
        Some(Placement {
            host: links.host.clone()?,
            cuda_device: links.device.as_ref().map(|(d, _)| *d),
            bus_id: links.device.as_ref().map(|(_, b)| b.clone()),
        })
    }

    /// The blocking link of `entity` (`<service>/rank<N>`): only for a rank that reported
    /// network failures, and only when exactly one of the ranks it sends to (its rings'
    /// next ranks, its tree parent) runs on another node — otherwise there is no telling
    /// which link failed, and none is named.
    pub fn blocking_link(&self, entity: &str) -> Option<BlockingLink> {
        let (service, rank) = entity.rsplit_once("/rank")?;
        let job = self.jobs.get(service)?;
        let links = job.ranks.get(&rank.parse::<u32>().ok()?)?;
        let evidence = links.net_warning.clone()?;
        let host = links.host.as_deref()?;
        let other_node = |to: &u32| {
            let theirs = job.ranks.get(to).and_then(|l| l.host.as_deref());
            theirs.is_some_and(|h| h != host)
        };
        let mut candidates: BTreeMap<u32, &'static str> = BTreeMap::new();
        for (_, next) in links.ring_next.values() {
            if other_node(next) {
                candidates.insert(*next, "ring");
            }
        }
        if let Some(up) = links.tree_up.filter(other_node) {
            candidates.entry(up).or_insert("tree");
        }
        let mut candidates = candidates.into_iter();
        let (to, via) = candidates.next()?;
        if candidates.next().is_some() {
            return None;
        }
        Some(BlockingLink {
            from: entity.to_string(),
            to: format!("{service}/rank{to}"),
            via,
            evidence,
        })
    }
}

/// `NCCL INFO Channel 00/02 :    0   1   2   3` -> (channel, the ring's ranks).
fn ring_line(body: &str) -> Option<(u32, Vec<u32>)> {
    let rest = &body[body.find("NCCL INFO Channel ")? + "NCCL INFO Channel ".len()..];
    let (channel, rest) = rest.split_once('/')?;
    let (_, ranks) = rest.split_once(" : ")?;
    let ring: Vec<u32> = ranks
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (ring.len() >= 2).then_some((channel.trim().parse().ok()?, ring))
}

/// `NCCL INFO comm 0x55d… rank 3 nranks 8 cudaDev 3 [nvmlDev 3 ]busId 3b000 … Init COMPLETE`
/// -> (cuda device, bus id).
fn device_line(body: &str) -> Option<(u32, String)> {
    let rest = &body[body.find("NCCL INFO comm ")?..];
    let field = |name: &str| {
        let mut words = rest.split_whitespace();
        words.find(|w| *w == name)?;
        words.next()
    };
    let device = field("cudaDev")?.parse().ok()?;
    let bus = field("busId")?;
    bus.chars()
        .all(|c| c.is_ascii_hexdigit())
        .then(|| (device, bus.to_ascii_lowercase()))
}

/// `NCCL INFO Trees [0] 1/-1/-1->0->-1 [1] ...` -> (the rank, its parent in tree 0).
fn tree_line(body: &str) -> Option<(u32, Option<u32>)> {
    let rest = &body[body.find("NCCL INFO Trees [0] ")? + "NCCL INFO Trees [0] ".len()..];
    let first = rest.split_whitespace().next()?;
    let mut parts = first.split("->");
    let (_down, rank, up) = (parts.next()?, parts.next()?, parts.next()?);
    let up: i64 = up.parse().ok()?;
    Some((rank.parse().ok()?, u32::try_from(up).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(rank: u32, host: &'a str, body: &'a str) -> Line<'a> {
        Line {
            service: "trainer",
            rank: Some(rank),
            host: Some(host),
            body,
        }
    }

    const WARN: &str = "node-0:3131:3200 [3] NCCL WARN NET/IB : Got completion from peer \
                        10.0.0.12<40123> with status=12 opcode=0 len=0 vendor err 129 (Send)";

    #[test]
    fn topology_lines_are_read() {
        let ring = ring_line("n:1:2 [0] NCCL INFO Channel 01/02 :    3   4   5   0   1   2");
        assert_eq!(ring, Some((1, vec![3, 4, 5, 0, 1, 2])));
        assert_eq!(
            tree_line("n:1:2 [0] NCCL INFO Trees [0] 5/-1/-1->4->0 [1] 5/-1/-1->4->0"),
            Some((4, Some(0)))
        );
        assert_eq!(
            tree_line("NCCL INFO Trees [0] 1/4/-1->0->-1 [1] 1/4/-1->0->-1"),
            Some((0, None))
        );
        assert_eq!(ring_line("NCCL INFO Channel 00/02 : not a ring"), None);
        assert_eq!(
            device_line(
                "n:1:2 [3] NCCL INFO comm 0x55d1b2c3d000 rank 1 nranks 4 cudaDev 3 nvmlDev 3 \
                 busId 3B000 commId 0x5e1f - Init COMPLETE"
            ),
            Some((3, "3b000".to_string()))
        );
    }

    #[test]
    fn a_rank_is_placed_on_its_host_and_gpu() {
        let mut g = CommGraph::default();
        let init = "x:1:2 [2] NCCL INFO comm 0x55d0 rank 0 nranks 2 cudaDev 2 busId 5d000 - \
                    Init COMPLETE";
        g.learn_line(&line(6, "node-1", init));
        let p = g.placement("trainer/rank6").expect("placed");
        assert_eq!(p.host, "node-1");
        assert_eq!(
            (p.cuda_device, p.bus_id.as_deref()),
            (Some(2), Some("5d000"))
        );
        assert_eq!(g.placement("trainer/rank7"), None);
        let table = g.ranks_batch();
        assert_eq!(table.num_rows(), 1);
        let text = |c: usize| table.column(c).as_string::<i32>().value(0).to_string();
        assert_eq!(
            (1..5).map(text).collect::<Vec<_>>(),
            ["6", "node-1", "2", "5d000"]
        );
    }

    /// Four ranks per node: rank 3's ring neighbour is rank 4 on the next node.
    fn ring_job(g: &mut CommGraph, warn_from: Option<u32>) {
        for r in 0..8u32 {
            let host = format!("node-{}", r / 4);
            let order: String = (0..8).map(|k| format!(" {}", (r + k) % 8)).collect();
            let body = format!("x:1:2 [0] NCCL INFO Channel 00/02 :{order}");
            g.learn_line(&line(r, &host, &body));
            // A tensor-parallel communicator's ring, in group-local ranks: never the world's.
            g.learn_line(&line(
                r,
                &host,
                "x:1:2 [0] NCCL INFO Channel 00/02 : 0 1 2 3",
            ));
        }
        if let Some(r) = warn_from {
            g.learn_line(&line(r, &format!("node-{}", r / 4), WARN));
        }
    }

    #[test]
    fn the_link_is_from_the_warning_rank_to_its_neighbour_on_another_node() {
        let mut g = CommGraph::default();
        ring_job(&mut g, Some(3));
        let link = g.blocking_link("trainer/rank3").expect("a link");
        assert_eq!((link.to.as_str(), link.via), ("trainer/rank4", "ring"));
        assert!(link.evidence.starts_with("NCCL WARN NET/IB"), "{link:?}");
    }

    #[test]
    fn no_link_without_a_network_warning_or_a_cross_node_neighbour() {
        let mut g = CommGraph::default();
        ring_job(&mut g, None);
        assert_eq!(g.blocking_link("trainer/rank3"), None, "no warning");
        let mut g = CommGraph::default();
        ring_job(&mut g, Some(2));
        // Rank 2 sends to rank 3 on its own node: not a network link.
        assert_eq!(g.blocking_link("trainer/rank2"), None);
        assert_eq!(g.blocking_link("trainer/rank9"), None, "unknown rank");
    }

    #[test]
    fn a_tree_parent_on_another_node_is_the_link() {
        let mut g = CommGraph::default();
        // Node heads 0 and 4; rank 4's parent is rank 0 on node-0.
        g.learn_line(&line(
            0,
            "node-0",
            "NCCL INFO Trees [0] 1/4/-1->0->-1 [1] 1/4/-1->0->-1",
        ));
        g.learn_line(&line(
            4,
            "node-1",
            "NCCL INFO Trees [0] 5/-1/-1->4->0 [1] 5/-1/-1->4->0",
        ));
        g.learn_line(&line(4, "node-1", WARN));
        let link = g.blocking_link("trainer/rank4").expect("a link");
        assert_eq!((link.to.as_str(), link.via), ("trainer/rank0", "tree"));
    }

    #[test]
    fn the_idlest_jobs_are_forgotten_beyond_the_bound() {
        let mut g = CommGraph::default();
        for j in 0..(MAX_JOBS + 10) {
            g.step += 1;
            let name = format!("job-{j}");
            g.learn_line(&Line {
                service: &name,
                rank: Some(0),
                host: Some("h"),
                body: "NCCL INFO Channel 00/02 : 0 1",
            });
            g.forget_idlest();
        }
        assert_eq!(g.jobs.len(), MAX_JOBS);
        assert!(!g.jobs.contains_key("job-0") && g.jobs.contains_key("job-265"));
    }
}
