//! Golden cases computed by hand, and property tests of the scheduler's
//! invariants on random clusters and workloads.

use proptest::prelude::*;

use super::*;

fn gpus(n: u64) -> Resources {
    Resources::gpus(n)
}

fn job(id: &str, queue: &str, submit: f64, pods: u32, per_pod_gpus: u64, duration: f64) -> Workload {
    Workload::new(id, queue, submit, vec![PodSetRequest::new("w", pods, gpus(per_pod_gpus))]).with_duration(duration)
}

fn admitted(cycle: &Cycle) -> Vec<Ticket> {
    cycle.admitted().map(|a| a.ticket).collect()
}

fn waits(cycle: &Cycle) -> Vec<(Ticket, WaitReason)> {
    cycle
        .decisions
        .iter()
        .filter_map(|d| if let Decision::Wait { ticket, reason } = d { Some((*ticket, *reason)) } else { None })
        .collect()
}

#[test]
fn strict_fifo_head_blocks_everything_behind_it() {
    let mut s = GangScheduler::new(Cluster::uniform(1, 8), vec![Queue::unlimited("q")], StrictFifo).unwrap();
    let a = s.submit(job("a", "q", 0.0, 1, 4, 100.0)).unwrap();
    let b = s.submit(job("b", "q", 1.0, 1, 8, 100.0)).unwrap();
    let _c = s.submit(job("c", "q", 2.0, 1, 2, 10.0)).unwrap();
    let cycle = s.schedule(2.0);
    assert_eq!(admitted(&cycle), vec![a]);
    assert!(matches!(waits(&cycle)[..], [(t, WaitReason::Capacity { .. })] if t == b));
    assert_eq!(cycle.not_tried, 1, "c is behind b");
    assert_eq!(s.free(0), gpus(4));
}

#[test]
fn backfill_starts_only_what_does_not_delay_the_head() {
    // Node of 8 GPUs. a: 4 GPUs until t=100. Head b needs 7 → reserved at
    // 100, leaving 1 GPU spare then. d (2 GPUs, 500 s) would hold GPUs b
    // needs at 100 → waits. c (2 GPUs, 50 s) ends at 52 ≤ 100 → backfilled.
    // e (1 GPU, 500 s) fits the spare GPU → backfilled too.
    let mut s = GangScheduler::new(Cluster::uniform(1, 8), vec![Queue::unlimited("q")], Backfill).unwrap();
    let a = s.submit(job("a", "q", 0.0, 1, 4, 100.0)).unwrap();
    assert_eq!(admitted(&s.schedule(0.0)), vec![a]);
    let b = s.submit(job("b", "q", 1.0, 1, 7, 100.0)).unwrap();
    let d = s.submit(job("d", "q", 1.5, 1, 2, 500.0)).unwrap();
    let c = s.submit(job("c", "q", 2.0, 1, 2, 50.0)).unwrap();
    let e = s.submit(job("e", "q", 3.0, 1, 1, 500.0)).unwrap();
    let cycle = s.schedule(3.0);
    assert_eq!(cycle.reservation, Some((b, 100.0)));
    assert_eq!(admitted(&cycle), vec![c, e]);
    let w = waits(&cycle);
    assert!(
        matches!(w[1], (t, WaitReason::Reservation { head, at_s }) if t == d && head == b && at_s == 100.0),
        "{w:?}"
    );
    assert_eq!(cycle.decisions[1].reason(), "would delay workload #1, which has a reservation at t=100s (backfill)");
    s.finish(a).unwrap();
    s.finish(c).unwrap();
    assert_eq!(admitted(&s.schedule(100.0)), vec![b]);
}

#[test]
fn backfill_stops_scanning_once_only_short_jobs_could_start() {
    // The spare capacity at the reservation is gone: long jobs are not even
    // tried (counted in not_tried); the short one found by duration starts.
    let mut s = GangScheduler::new(Cluster::uniform(1, 8), vec![Queue::unlimited("q")], Backfill).unwrap();
    s.submit(job("a", "q", 0.0, 1, 4, 100.0)).unwrap();
    s.schedule(0.0);
    let b = s.submit(job("b", "q", 1.0, 1, 8, 100.0)).unwrap();
    for i in 0..5 {
        s.submit(job(&format!("long{i}"), "q", 2.0, 1, 1, 500.0)).unwrap();
    }
    let short = s.submit(job("short", "q", 3.0, 1, 1, 10.0)).unwrap();
    let cycle = s.schedule(3.0);
    assert_eq!(cycle.reservation, Some((b, 100.0)));
    assert_eq!(admitted(&cycle), vec![short]);
    assert_eq!(cycle.not_tried, 5);
}

#[test]
fn backfill_uses_capacity_the_reservation_does_not_need() {
    // Two nodes of 8. a holds node 0 (8 GPUs) until 100; node 1 has 6 GPUs
    // taken by x until 1000. Head b needs 8 GPUs → node 0 at t=100. A long
    // 2-GPU job fits node 1 (not reserved) → backfilled.
    let mut s = GangScheduler::new(Cluster::uniform(2, 8), vec![Queue::unlimited("q")], Backfill).unwrap();
    s.submit(job("a", "q", 0.0, 1, 8, 100.0)).unwrap();
    s.submit(job("x", "q", 0.0, 1, 6, 1000.0)).unwrap();
    assert_eq!(s.schedule(0.0).admitted().count(), 2);
    let b = s.submit(job("b", "q", 1.0, 1, 8, 10.0)).unwrap();
    let long = s.submit(job("long", "q", 2.0, 1, 2, 5000.0)).unwrap();
    let cycle = s.schedule(2.0);
    assert_eq!(cycle.reservation, Some((b, 100.0)));
    assert_eq!(admitted(&cycle), vec![long]);
    assert_eq!(cycle.admitted().next().unwrap().pods[0].node, 1);
}

#[test]
fn backfill_without_known_durations_degrades_to_strict_fifo() {
    let mut s = GangScheduler::new(Cluster::uniform(1, 8), vec![Queue::unlimited("q")], Backfill).unwrap();
    let mut a = job("a", "q", 0.0, 1, 4, 1.0);
    a.duration_s = None;
    s.submit(a).unwrap();
    s.schedule(0.0);
    s.submit(job("b", "q", 1.0, 1, 8, 10.0)).unwrap();
    s.submit(job("c", "q", 2.0, 1, 1, 1.0)).unwrap();
    let cycle = s.schedule(2.0);
    assert_eq!(cycle.admitted().count(), 0);
    assert_eq!(cycle.reservation, None);
    assert_eq!(cycle.not_tried, 1);
}

#[test]
fn gang_is_all_or_nothing_and_too_large_gangs_are_unschedulable() {
    let mut s = GangScheduler::new(Cluster::uniform(2, 8), vec![Queue::unlimited("q")], StrictFifo).unwrap();
    let big = s.submit(job("big", "q", 0.0, 3, 8, 1.0)).unwrap();
    let split = s.submit(job("split", "q", 0.0, 2, 6, 1.0)).unwrap();
    let cycle = s.schedule(0.0);
    assert!(
        matches!(&cycle.decisions[0], Decision::Unschedulable { ticket, reason } if *ticket == big && reason.contains("does not fit the cluster even when empty"))
    );
    let a = cycle.admitted().next().unwrap();
    assert_eq!(a.ticket, split);
    assert_eq!(a.pods.iter().map(|p| p.node).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(s.pending_len(), 0);
    // A 3×6 gang: two pods fit, the third does not → nothing placed.
    s.finish(split).unwrap();
    s.submit(job("three", "q", 1.0, 2, 6, 1.0)).unwrap();
    s.submit(job("other", "q", 1.0, 1, 6, 1.0)).unwrap();
    let cycle = s.schedule(1.0);
    assert_eq!(cycle.admitted().count(), 1);
    assert_eq!(s.free(0).plus(s.free(1)), gpus(4));
}

#[test]
fn zero_capacity_cluster_reports_every_job_unschedulable() {
    let mut s = GangScheduler::new(Cluster::uniform(0, 8), vec![Queue::unlimited("q")], Backfill).unwrap();
    s.submit(job("a", "q", 0.0, 1, 1, 1.0)).unwrap();
    let cycle = s.schedule(0.0);
    assert!(matches!(cycle.decisions[..], [Decision::Unschedulable { .. }]));
    let mut s = GangScheduler::new(Cluster::uniform(4, 0), vec![Queue::unlimited("q")], Backfill).unwrap();
    s.submit(job("a", "q", 0.0, 1, 1, 1.0)).unwrap();
    assert!(matches!(s.schedule(0.0).decisions[..], [Decision::Unschedulable { .. }]));
}

fn cohort_queues(lending_b: Option<u64>, reclaim: ReclaimWithinCohort) -> Vec<Queue> {
    let mut a = Queue::new("a", DEFAULT_FLAVOR, gpus(8)).in_cohort("c");
    let mut b = Queue::new("b", DEFAULT_FLAVOR, gpus(8)).in_cohort("c");
    b.flavors[0].lending_limit = lending_b.map(gpus);
    b.preemption.reclaim_within_cohort = reclaim;
    a.preemption.reclaim_within_cohort = reclaim;
    vec![a, b]
}

#[test]
fn borrowing_from_the_cohort_and_reclaiming_it() {
    let mut s =
        GangScheduler::new(Cluster::uniform(2, 8), cohort_queues(None, ReclaimWithinCohort::Any), StrictFifo).unwrap();
    let a1 = s.submit(job("a1", "a", 0.0, 1, 8, 100.0)).unwrap();
    let a2 = s.submit(job("a2", "a", 1.0, 1, 4, 100.0)).unwrap();
    let cycle = s.schedule(1.0);
    assert_eq!(admitted(&cycle), vec![a1, a2]);
    assert!(cycle.admitted().nth(1).unwrap().borrowing, "a2 takes 4 of b's GPUs");
    assert_eq!(s.usage("a", DEFAULT_FLAVOR), Some(gpus(12)));
    // b wants its full nominal back: a2 (the borrower) is reclaimed.
    let b1 = s.submit(job("b1", "b", 2.0, 1, 8, 100.0)).unwrap();
    let cycle = s.schedule(2.0);
    assert_eq!(cycle.decisions[0], Decision::Preempt { victim: a2, by: b1, reclaim: true });
    assert_eq!(admitted(&cycle), vec![b1]);
    assert_eq!(s.usage("a", DEFAULT_FLAVOR), Some(gpus(8)));
    assert_eq!(s.running_len(), 2);
    assert_eq!(s.pending_len(), 1, "a2 went back to the queue");
}

#[test]
fn no_reclaim_policy_means_the_lender_waits() {
    // Three nodes, so capacity is not what holds b1 back: quota is.
    let mut s = GangScheduler::new(Cluster::uniform(3, 8), cohort_queues(None, ReclaimWithinCohort::Never), StrictFifo)
        .unwrap();
    s.submit(job("a1", "a", 0.0, 1, 8, 100.0)).unwrap();
    s.submit(job("a2", "a", 1.0, 1, 4, 100.0)).unwrap();
    s.schedule(1.0);
    let b1 = s.submit(job("b1", "b", 2.0, 1, 8, 100.0)).unwrap();
    let cycle = s.schedule(2.0);
    assert!(
        matches!(waits(&cycle)[..], [(t, WaitReason::Quota { dimension: "gpu", requested: 8, available: 4 })] if t == b1)
    );
}

#[test]
fn lending_limit_caps_what_others_borrow() {
    // b lends at most 2 of its 8: a can reach 10, never 12.
    let mut s =
        GangScheduler::new(Cluster::uniform(2, 8), cohort_queues(Some(2), ReclaimWithinCohort::Never), StrictFifo)
            .unwrap();
    let a10 = s.submit(job("a10", "a", 0.0, 1, 8, 1.0)).unwrap();
    s.submit(job("a2", "a", 0.0, 1, 2, 1.0)).unwrap();
    let a1 = s.submit(job("a1", "a", 0.0, 1, 1, 1.0)).unwrap();
    let cycle = s.schedule(0.0);
    assert_eq!(cycle.admitted().count(), 2);
    assert!(matches!(waits(&cycle)[..], [(t, WaitReason::Quota { available: 0, .. })] if t == a1));
    let _ = a10;
    let big = s.submit(job("a12", "a", 0.0, 1, 11, 1.0)).unwrap();
    let cycle = s.schedule(0.0);
    assert!(matches!(&cycle.decisions[0], Decision::Unschedulable { ticket, .. } if *ticket == big));
}

#[test]
fn borrowing_limit_caps_a_queue() {
    let mut a = Queue::new("a", DEFAULT_FLAVOR, gpus(4)).in_cohort("c");
    a.flavors[0].borrowing_limit = Some(gpus(2));
    let b = Queue::new("b", DEFAULT_FLAVOR, gpus(12)).in_cohort("c");
    let mut s = GangScheduler::new(Cluster::uniform(2, 8), vec![a, b], ShortestJobFirst).unwrap();
    s.submit(job("x", "a", 0.0, 1, 6, 1.0)).unwrap();
    s.submit(job("y", "a", 0.0, 1, 1, 2.0)).unwrap();
    let cycle = s.schedule(0.0);
    assert_eq!(cycle.admitted().count(), 1);
    assert_eq!(s.usage("a", DEFAULT_FLAVOR), Some(gpus(6)));
}

#[test]
fn queue_without_cohort_never_exceeds_nominal() {
    let q = Queue::new("q", DEFAULT_FLAVOR, gpus(4));
    let mut s = GangScheduler::new(Cluster::uniform(1, 8), vec![q], StrictFifo).unwrap();
    s.submit(job("a", "q", 0.0, 1, 3, 1.0)).unwrap();
    let b = s.submit(job("b", "q", 0.0, 1, 2, 1.0)).unwrap();
    let cycle = s.schedule(0.0);
    assert!(matches!(waits(&cycle)[..], [(t, WaitReason::Quota { requested: 2, available: 1, .. })] if t == b));
    let reason = cycle.decisions[1].reason();
    assert_eq!(reason, "queue quota: needs 2 gpu, the queue (with what its cohort lends) has 1 left");
}

#[test]
fn within_queue_preemption_evicts_lower_priority_only() {
    let q = Queue::unlimited("q").with_preemption(Preemption {
        within_queue: WithinQueue::LowerPriority,
        reclaim_within_cohort: ReclaimWithinCohort::Never,
    });
    let mut s = GangScheduler::new(Cluster::uniform(1, 8), vec![q], StrictFifo).unwrap();
    let low = s.submit(job("low", "q", 0.0, 1, 4, 1.0).with_priority(0)).unwrap();
    let low2 = s.submit(job("low2", "q", 0.0, 1, 2, 1.0).with_priority(0)).unwrap();
    let mid = s.submit(job("mid", "q", 0.0, 1, 2, 1.0).with_priority(1)).unwrap();
    assert_eq!(s.schedule(0.0).admitted().count(), 3);
    // high needs 4: evicting low2 (2) is not enough; low (4, the most
    // recent among equals is tried first? both started at 0 → higher ticket
    // first: low2, then low). Minimality gives low2 back.
    let high = s.submit(job("high", "q", 1.0, 1, 4, 1.0).with_priority(5)).unwrap();
    let cycle = s.schedule(1.0);
    assert_eq!(cycle.decisions[0], Decision::Preempt { victim: low, by: high, reclaim: false });
    assert_eq!(admitted(&cycle), vec![high]);
    assert!(s.running().any(|(t, ..)| t == low2) && s.running().any(|(t, ..)| t == mid));
    // Priority 1 may only evict low2 (priority 0, 2 GPUs): not enough, so nobody.
    s.submit(job("peer", "q", 2.0, 1, 4, 1.0).with_priority(1)).unwrap();
    assert!(!s.schedule(2.0).decisions.iter().any(|d| matches!(d, Decision::Preempt { .. })));
}

#[test]
fn topology_required_level_is_never_violated_and_smallest_domain_wins() {
    // rack r0: n0 (8), n1 (8); rack r1: n2 (8), n3 (8). 4 GPUs used on n0.
    let nodes = (0..4).map(|i| Node::new(format!("n{i}"), gpus(8)).with_label("rack", format!("r{}", i / 2)));
    let cluster = Cluster::new(nodes.collect(), vec!["rack".into()]).unwrap();
    let mut s = GangScheduler::new(cluster, vec![Queue::unlimited("q")], Backfill).unwrap();
    s.submit(job("pin", "q", 0.0, 1, 4, 100.0)).unwrap();
    s.schedule(0.0);
    // 12 GPUs as 3×4: fits rack r0 (4+8 free) exactly — the smaller free domain.
    let g = s.submit(job("g", "q", 1.0, 3, 4, 10.0).with_topology("rack", TopologyMode::Required)).unwrap();
    let cycle = s.schedule(1.0);
    let a = cycle.admitted().next().unwrap();
    assert_eq!(a.ticket, g);
    assert_eq!(a.domain, DomainRef::Domain { depth: 0, index: 0 });
    assert!(a.pods.iter().all(|p| p.node < 2));
    // 3×8 needs 24 GPUs in one rack: never possible.
    let too_big = s.submit(job("x", "q", 2.0, 3, 8, 1.0).with_topology("rack", TopologyMode::Required)).unwrap();
    assert!(
        matches!(&s.schedule(2.0).decisions[0], Decision::Unschedulable { ticket, reason } if *ticket == too_big && reason.contains("one rack domain"))
    );
    // Preferred: spread over the cluster when no rack has room.
    let p = s.submit(job("p", "q", 3.0, 3, 4, 1.0).with_topology("rack", TopologyMode::Preferred)).unwrap();
    let cycle = s.schedule(3.0);
    let a = cycle.admitted().next().unwrap();
    assert_eq!((a.ticket, a.domain), (p, DomainRef::Domain { depth: 0, index: 1 }));
    // Unknown level: an error at submit, with the path.
    let err = s.submit(job("u", "q", 0.0, 1, 1, 1.0).with_topology("zone", TopologyMode::Required)).unwrap_err();
    assert_eq!(err.path(), "workload \"u\".topology.level");
}

#[test]
fn single_node_placement_is_best_fit() {
    let mut s = GangScheduler::new(Cluster::uniform(3, 8), vec![Queue::unlimited("q")], StrictFifo).unwrap();
    s.submit(job("a", "q", 0.0, 1, 6, 1.0)).unwrap();
    s.submit(job("b", "q", 0.0, 1, 3, 1.0)).unwrap();
    s.submit(job("c", "q", 0.0, 1, 2, 1.0)).unwrap();
    let nodes: Vec<usize> = s.schedule(0.0).admitted().map(|a| a.pods[0].node).collect();
    assert_eq!(nodes, vec![0, 1, 0], "c goes to the fullest node that fits (n0 has 2 left)");
}

#[test]
fn sjf_orders_by_requested_duration() {
    let mut s = GangScheduler::new(Cluster::uniform(1, 8), vec![Queue::unlimited("q")], ShortestJobFirst).unwrap();
    s.submit(job("long", "q", 0.0, 1, 8, 100.0)).unwrap();
    let short = s.submit(job("short", "q", 5.0, 1, 8, 10.0)).unwrap();
    assert_eq!(admitted(&s.schedule(5.0)), vec![short]);
}

#[test]
fn drf_serves_the_queue_with_the_smallest_dominant_share() {
    let queues = vec![Queue::unlimited("a"), Queue::unlimited("b")];
    let mut s = GangScheduler::new(Cluster::uniform(1, 8), queues, DominantResourceFairness).unwrap();
    let a1 = s.submit(job("a1", "a", 0.0, 1, 4, 1.0)).unwrap();
    s.schedule(0.0);
    s.submit(job("a2", "a", 1.0, 1, 2, 1.0)).unwrap();
    let b1 = s.submit(job("b1", "b", 2.0, 1, 2, 1.0)).unwrap();
    s.submit(job("b2", "b", 3.0, 1, 2, 1.0)).unwrap();
    // a holds 4/8, b 0 → b1; then b 2/8 < 4/8 → b2; the node is then full.
    let cycle = s.schedule(3.0);
    assert_eq!(admitted(&cycle)[0], b1);
    assert_eq!(cycle.admitted().count(), 2);
    assert_eq!(s.dominant_share("a"), Some(0.5));
    assert_eq!(s.dominant_share("b"), Some(0.5));
    let _ = a1;
}

#[test]
fn elastic_pod_sets_shrink_toward_min_count() {
    let mut s = GangScheduler::new(Cluster::uniform(2, 8), vec![Queue::unlimited("q")], StrictFifo).unwrap();
    s.submit(job("x", "q", 0.0, 1, 4, 1.0)).unwrap();
    let mut w = job("elastic", "q", 0.0, 8, 2, 1.0);
    w.pod_sets[0].min_count = Some(2);
    let t = s.submit(w).unwrap();
    let cycle = s.schedule(0.0);
    let a = cycle.admitted().find(|a| a.ticket == t).unwrap();
    assert_eq!(a.counts, vec![6], "12 GPUs free: the largest size that fits");
    assert_eq!(a.pods.len(), 6);
}

#[test]
fn multiple_flavors_are_tried_in_queue_order() {
    let nodes = vec![Node::new("t4", gpus(4)).with_flavor("t4"), Node::new("a100", gpus(8)).with_flavor("a100")];
    let cluster = Cluster::new(nodes, vec![]).unwrap();
    let mut q = Queue::new("q", "t4", gpus(4));
    q.flavors.push(FlavorQuota::new("a100", gpus(8)));
    let mut s = GangScheduler::new(cluster, vec![q], ShortestJobFirst).unwrap();
    let a = s.submit(job("a", "q", 0.0, 1, 4, 1.0)).unwrap();
    let b = s.submit(job("b", "q", 1.0, 1, 4, 1.0)).unwrap();
    let cycle = s.schedule(1.0);
    let flavors: Vec<(Ticket, &str)> = cycle.admitted().map(|a| (a.ticket, a.flavor.as_str())).collect();
    assert_eq!(flavors, vec![(a, "t4"), (b, "a100")]);
}

#[test]
fn bad_models_are_rejected_with_paths() {
    let err =
        GangScheduler::new(Cluster::uniform(1, 1), vec![Queue::unlimited("q"), Queue::unlimited("q")], StrictFifo)
            .unwrap_err();
    assert_eq!(err.path(), "queues[1].name");
    let mut s = GangScheduler::new(Cluster::uniform(1, 1), vec![Queue::unlimited("q")], StrictFifo).unwrap();
    assert_eq!(s.submit(job("a", "nope", 0.0, 1, 1, 1.0)).unwrap_err().path(), "workload \"a\".queue");
    assert_eq!(s.submit(job("a", "q", 0.0, 0, 1, 1.0)).unwrap_err().path(), "workload \"a\".podSets[0].count");
    assert_eq!(s.submit(job("a", "q", 0.0, 1, 1, -1.0)).unwrap_err().path(), "workload \"a\".duration_s");
    let nodes = vec![Node::new("a", gpus(1)).with_label("rack", "r"), Node::new("b", gpus(1))];
    assert_eq!(Cluster::new(nodes, vec!["rack".into()]).unwrap_err().path(), "nodes[1].labels");
    assert!(s.finish(Ticket(99)).is_err());
}

// ---------------------------------------------------------------- properties

/// (nominal GPUs, borrowing limit, lending limit, in the cohort, preemption policy code)
type QueueGen = (u64, Option<u64>, Option<u64>, bool, u8);
/// (queue, pod sets as (count, GPUs, CPUs/2, elastic), priority, duration, rack required)
type JobGen = (usize, Vec<(u32, u64, u64, bool)>, i32, u32, bool);

#[derive(Debug, Clone)]
struct World {
    nodes: Vec<(u64, u64, u8)>,
    queues: Vec<QueueGen>,
    jobs: Vec<JobGen>,
    policy: u8,
    finish_order: Vec<u8>,
}

fn world() -> impl Strategy<Value = World> {
    let node = (0u64..=8, 0u64..=16, 0u8..3);
    let queue = (0u64..=16, proptest::option::of(0u64..=8), proptest::option::of(0u64..=8), any::<bool>(), 0u8..4);
    let pod_set = (1u32..=4, 0u64..=4, 0u64..=8, any::<bool>());
    let job = (0usize..3, proptest::collection::vec(pod_set, 1..=2), 0i32..3, 1u32..50, any::<bool>());
    (
        proptest::collection::vec(node, 1..=6),
        proptest::collection::vec(queue, 1..=3),
        proptest::collection::vec(job, 1..=14),
        0u8..4,
        proptest::collection::vec(any::<u8>(), 8),
    )
        .prop_map(|(nodes, queues, jobs, policy, finish_order)| World {
            nodes,
            queues,
            jobs,
            policy,
            finish_order,
        })
}

fn build(world: &World) -> (GangScheduler<Box<dyn Policy + Send + Sync>>, Vec<Workload>) {
    let nodes: Vec<Node> = world
        .nodes
        .iter()
        .enumerate()
        .map(|(i, &(g, c, rack))| {
            Node::new(format!("n{i}"), Resources::new(c * 1000, 0, g)).with_label("rack", format!("r{rack}"))
        })
        .collect();
    let cluster = Cluster::new(nodes, vec!["rack".into()]).unwrap();
    let queues: Vec<Queue> = world
        .queues
        .iter()
        .enumerate()
        .map(|(i, &(nominal, borrow, lend, cohort, preempt))| {
            let mut q = Queue::new(format!("q{i}"), DEFAULT_FLAVOR, Resources::new(nominal * 2000, 0, nominal));
            q.flavors[0].borrowing_limit = borrow.map(|b| Resources::new(b * 2000, 0, b));
            q.flavors[0].lending_limit = lend.map(|l| Resources::new(l * 2000, 0, l));
            if cohort {
                q.cohort = Some("c".into());
            }
            q.preemption = Preemption {
                within_queue: if preempt & 1 == 1 { WithinQueue::LowerPriority } else { WithinQueue::Never },
                reclaim_within_cohort: match preempt {
                    2 => ReclaimWithinCohort::LowerPriority,
                    3 => ReclaimWithinCohort::Any,
                    _ => ReclaimWithinCohort::Never,
                },
            };
            q
        })
        .collect();
    let nq = queues.len();
    let policy = policy::by_name(["fifo", "backfill", "sjf", "drf"][world.policy as usize]).unwrap();
    let s = GangScheduler::new(cluster, queues, policy).unwrap();
    let jobs = world
        .jobs
        .iter()
        .enumerate()
        .map(|(i, (q, sets, prio, dur, rack))| {
            let pod_sets = sets
                .iter()
                .enumerate()
                .map(|(j, &(count, g, c, elastic))| PodSetRequest {
                    name: format!("ps{j}"),
                    count,
                    min_count: elastic.then_some(1),
                    per_pod: Resources::new(c * 500, 0, g),
                })
                .collect();
            let mut w = Workload::new(format!("j{i}"), format!("q{}", q % nq), i as f64, pod_sets)
                .with_priority(*prio)
                .with_duration(f64::from(*dur));
            if *rack {
                w = w.with_topology("rack", TopologyMode::Required);
            }
            w
        })
        .collect();
    (s, jobs)
}

/// Checks every invariant of the current state; returns the decisions' log.
fn check_state(s: &GangScheduler<Box<dyn Policy + Send + Sync>>, world: &World) -> Result<(), TestCaseError> {
    let cluster = s.cluster();
    // No over-commit, and free = allocatable − Σ placed pods, exactly.
    let mut used = vec![Resources::ZERO; cluster.nodes().len()];
    for (_, w, _, groups) in s.running() {
        for &(set, node, n) in groups {
            used[node] = used[node].plus(w.pod_sets[set].per_pod.times(u64::from(n)));
        }
    }
    for (i, node) in cluster.nodes().iter().enumerate() {
        prop_assert!(used[i].fits_in(&node.allocatable), "node {i} over-committed: {} > {}", used[i], node.allocatable);
        prop_assert_eq!(s.free(i), node.allocatable.minus(used[i]));
    }
    // Quotas: nominal (+ borrowing limit) per queue, Σ lendable per cohort.
    let mut cohort_used = Resources::ZERO;
    let mut cohort_cap = Resources::ZERO;
    for q in s.queues() {
        let usage = s.usage(&q.name, DEFAULT_FLAVOR).unwrap_or(Resources::ZERO);
        let fq = &q.flavors[0];
        let limit = if q.cohort.is_some() {
            fq.nominal.plus(fq.borrowing_limit.unwrap_or(Resources::UNLIMITED))
        } else {
            fq.nominal
        };
        prop_assert!(usage.fits_in(&limit), "queue {} uses {usage} > {limit}", q.name);
        if q.cohort.is_some() {
            cohort_used = cohort_used.plus(usage.minus(fq.guaranteed()));
            cohort_cap = cohort_cap.plus(fq.lendable());
        }
    }
    prop_assert!(cohort_used.fits_in(&cohort_cap), "cohort uses {cohort_used} > {cohort_cap}");
    let _ = world;
    Ok(())
}

fn check_cycle(
    s: &GangScheduler<Box<dyn Policy + Send + Sync>>,
    cycle: &Cycle,
    jobs: &[Workload],
) -> Result<(), TestCaseError> {
    for d in &cycle.decisions {
        match d {
            Decision::Admit(a) => {
                let w = &jobs[a.ticket.0 as usize];
                prop_assert_eq!(a.counts.len(), w.pod_sets.len());
                for (i, ps) in w.pod_sets.iter().enumerate() {
                    let placed = a.pods.iter().filter(|p| p.pod_set == i).count() as u32;
                    prop_assert_eq!(placed, a.counts[i], "gang: pods placed = pods admitted");
                    prop_assert!(a.counts[i] <= ps.count && a.counts[i] >= ps.min_count.unwrap_or(ps.count));
                }
                if let Some(t) = &w.topology {
                    let racks: std::collections::BTreeSet<&String> =
                        a.pods.iter().map(|p| &s.cluster().nodes()[p.node].labels[&t.level]).collect();
                    prop_assert!(racks.len() <= 1, "required rack violated: {racks:?}");
                }
            }
            Decision::Preempt { victim, .. } => {
                prop_assert!(!s.running().any(|(t, ..)| t == *victim), "victim still running");
                prop_assert!(s.workload(*victim).is_some(), "victim requeued");
            }
            Decision::Wait { .. } | Decision::Unschedulable { .. } => {}
        }
        prop_assert!(!d.reason().is_empty());
    }
    Ok(())
}

/// Submits jobs in three waves with finishes in between; returns every cycle.
fn drive(world: &World) -> Result<Vec<Cycle>, TestCaseError> {
    let (mut s, jobs) = build(world);
    let mut cycles = Vec::new();
    let waves = jobs.chunks(jobs.len().div_ceil(3).max(1));
    let mut now = 0.0;
    for (f, wave) in waves.enumerate() {
        for w in wave {
            s.submit(w.clone()).unwrap();
        }
        now += 10.0;
        let cycle = s.schedule(now);
        check_cycle(&s, &cycle, &jobs)?;
        check_state(&s, world)?;
        cycles.push(cycle);
        // Finish some running workloads.
        let running: Vec<Ticket> = s.running().map(|(t, ..)| t).collect();
        for (k, t) in running.iter().enumerate() {
            if world.finish_order[(f + k) % world.finish_order.len()].is_multiple_of(2) {
                s.finish(*t).unwrap();
            }
        }
        check_state(&s, world)?;
    }
    let cycle = s.schedule(now + 10.0);
    check_cycle(&s, &cycle, &jobs)?;
    check_state(&s, world)?;
    cycles.push(cycle);
    Ok(cycles)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_on_random_worlds(world in world()) {
        drive(&world)?;
    }

    #[test]
    fn decisions_are_deterministic(world in world()) {
        prop_assert_eq!(drive(&world)?, drive(&world)?);
    }

    #[test]
    fn plan_is_schedule_without_side_effects(nodes in 1usize..5, sizes in proptest::collection::vec(1u64..9, 1..10)) {
        let mut s = GangScheduler::new(Cluster::uniform(nodes, 8), vec![Queue::unlimited("q")], Backfill).unwrap();
        for (i, g) in sizes.iter().enumerate() {
            s.submit(job(&format!("j{i}"), "q", i as f64, 1, *g, 10.0)).unwrap();
        }
        let planned = s.plan(0.0);
        prop_assert_eq!(s.running_len(), 0);
        prop_assert_eq!(planned, s.schedule(0.0));
    }
}

#[test]
fn cycles_after_submissions_only_match_full_cycles() {
    // Cycles with only submissions since the last one try only the new
    // workloads; the answers must be those of full cycles, computed by hand:
    // a runs (4 of 8 GPUs), b (8) is reserved at t=101; c (2, ends 52) is
    // backfilled; d (2 GPUs past 101) waits, e (1, ends 13) is backfilled;
    // "urgent" outranks b and takes the last free GPU (a full cycle).
    let steps: Vec<Vec<Workload>> = vec![
        vec![job("a", "q", 0.0, 1, 4, 100.0), job("b", "q", 1.0, 1, 8, 100.0)],
        vec![job("c", "q", 2.0, 1, 2, 50.0)],
        vec![job("d", "q", 3.0, 1, 2, 500.0), job("e", "q", 4.0, 1, 1, 10.0)],
        vec![job("urgent", "q", 5.0, 1, 1, 500.0).with_priority(9)],
    ];
    let mut incremental = GangScheduler::new(Cluster::uniform(1, 8), vec![Queue::unlimited("q")], Backfill).unwrap();
    let mut seen = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        for w in step {
            incremental.submit(w.clone()).unwrap();
        }
        let now = i as f64 + 1.0;
        let got: Vec<String> =
            incremental.schedule(now).admitted().map(|a| incremental.workload(a.ticket).unwrap().id.clone()).collect();
        seen.extend(got);
    }
    assert_eq!(seen, vec!["a", "c", "e", "urgent"]);
}
