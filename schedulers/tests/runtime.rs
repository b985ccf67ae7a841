//! The runtime schedulers in the simulator, on hand-made profiles and a predictor whose answer
//! is known: what each promises (Clockwork: one batch at a time, nothing served late; Abacus:
//! no batch launched beside another when that would miss its deadline) and what it buys over
//! launching every batch as it comes.

mod common;

use coloc_dataset::rows::{BatchRow, RequestRow, Status};
use coloc_harness::record::TenantOutput;
use coloc_harness::run::RunData;
use coloc_harness::solo::SoloProfiles;
use coloc_harness::validity::judge;
use coloc_schedulers::sim::{Scheduler, SimulatedRun, simulate};
use coloc_workloads::batcher::Trigger;
use coloc_workloads::scenario::{DeviceLimits, SoloShare};
use common::{OVERHEADS, Slowdown, inputs, profile, suite};

/// Two tenants, resnet50 and bert_base, with the same batching and arrivals; `scheduler` is the
/// scenario's line naming its runtime scheduler, if any.
fn two_tenants(partition: &str, scheduler: &str, batching: &str, arrival: &str, slo_ms: f64) -> String {
    format!(
        r#"
name = "t"
[[scenario]]
name = "pair"
partition = "{partition}"
{scheduler}
duration_s = 1.0
warmup_s = 0.1
slo_ms = {slo_ms:?}
[[scenario.tenant]]
model = "resnet50"
{batching}
arrival = {arrival}
[[scenario.tenant]]
model = "bert_base"
{batching}
arrival = {arrival}
"#
    )
}

fn device_profiles(times: &[(u32, f64)]) -> SoloProfiles {
    let models = ["resnet50", "bert_base"]
        .iter()
        .flat_map(|m| times.iter().map(|&(b, us)| profile(m, b, SoloShare::Device, us)))
        .collect();
    SoloProfiles { models, ..Default::default() }
}

/// Whether any two batches of the run (of any tenant) ran at the same time.
fn any_overlap(batches: &[BatchRow]) -> bool {
    let mut spans: Vec<(i64, i64)> = batches.iter().map(|b| (b.start_ns, b.end_ns)).collect();
    spans.sort();
    spans.windows(2).any(|w| w[1].0 < w[0].1)
}

fn measured(run: &SimulatedRun) -> impl Iterator<Item = &RequestRow> {
    run.requests.iter().filter(|r| !r.warmup)
}

#[test]
fn least_headroom_first_holds_back_a_batch_its_predictor_expects_to_miss() {
    // both tenants get a request at the same instants; a batch takes 1 ms alone and 4 ms beside
    // the other's, against an SLO of 3 ms
    let s = suite(&two_tenants("streams", "", "batch = 1", r#"{ kind = "uniform", rate = 300.0, spread = 0.0 }"#, 3.0));
    let solo = device_profiles(&[(1, 1000.0)]);
    let limits = DeviceLimits::h200();
    let inputs = inputs(&limits, &solo, &s);
    let slowdown = Slowdown { per_co_runner: 3.0 };
    let run = |scheduler: &Scheduler| simulate(&s.scenarios[0], 1, &inputs, &slowdown, OVERHEADS, scheduler).unwrap();
    // the tenants' own loops on streams: first come first served
    let fcfs = run(&Scheduler::Harness);
    let abacus = run(&Scheduler::LeastHeadroom { predictor: &slowdown });
    // first come first served: the second of each pair runs beside the first and misses
    assert!(any_overlap(&fcfs.batches));
    let worst = fcfs.tenants.iter().map(|t| t.slo_attainment).fold(1.0, f64::min);
    assert!(worst < 0.05, "first come first served keeps {worst} of one tenant's SLO");
    // least headroom first: the second waits for the first, and both keep every request
    assert!(!any_overlap(&abacus.batches), "a batch launched beside another though it would miss");
    for t in &abacus.tenants {
        assert_eq!(t.slo_attainment, 1.0, "{}", t.name);
        assert!(t.p99_ms.unwrap() < 2.1, "{}: {:?}", t.name, t.p99_ms);
    }
    assert_eq!(measured(&abacus).count(), measured(&fcfs).count());
}

#[test]
fn clockwork_runs_one_batch_at_a_time_and_drops_what_would_be_late_rather_than_serve_it_late() {
    // two tenants of 4,000 requests/s each on one stream: batches of 8 take 1.6 ms alone, so the
    // GPU would need 1.6 s a second; SLO 4 ms. Against the same tenants' own loops at batch 8.
    let poisson = r#"{ kind = "poisson", rate = 4000.0 }"#;
    let dynamic = r#"batching = { policy = "dynamic", max_batch = 8, timeout_ms = 1.0 }"#;
    let s = suite(&two_tenants("time_sliced", r#"scheduler = "clockwork""#, dynamic, poisson, 4.0));
    let fixed = suite(&two_tenants("time_sliced", "", "batch = 8", poisson, 4.0));
    let solo = device_profiles(&[(1, 500.0), (4, 1000.0), (8, 1600.0)]);
    let limits = DeviceLimits::h200();
    let exact = Slowdown { per_co_runner: 0.0 };
    let clockwork =
        simulate(&s.scenarios[0], 1, &inputs(&limits, &solo, &s), &exact, OVERHEADS, &Scheduler::Harness).unwrap();
    let independent =
        simulate(&fixed.scenarios[0], 1, &inputs(&limits, &solo, &fixed), &exact, OVERHEADS, &Scheduler::Harness)
            .unwrap();
    assert!(!any_overlap(&clockwork.batches));
    assert!(clockwork.batches.iter().all(|b| b.trigger == Trigger::Scheduled && [1, 4, 8].contains(&b.bucket)));
    // with exact predictions nothing it serves is late; what it cannot serve in time it drops
    assert!(measured(&clockwork).filter(|r| r.latency_ns.is_some()).all(|r| r.slo_met));
    let dropped = measured(&clockwork).filter(|r| r.latency_ns.is_none()).count();
    assert!(dropped > 100, "{dropped} dropped");
    for (c, i) in clockwork.tenants.iter().zip(&independent.tenants) {
        assert!(c.slo_attainment > 0.5, "{}: clockwork keeps {}", c.name, c.slo_attainment);
        assert!(
            c.slo_attainment > i.slo_attainment + 0.3,
            "{}: {} against {}",
            c.name,
            c.slo_attainment,
            i.slo_attainment
        );
    }
    // the harness judges the Clockwork run VALID, its drops noted as misses, and the loops' run
    // INVALID: their queues grew
    let verdict = |run: SimulatedRun, scenario: &coloc_workloads::scenario::Scenario| {
        let mut data = RunData {
            tenants: run.tenants,
            aggressors: Vec::new(),
            records: TenantOutput { requests: run.requests, batches: run.batches, ..TenantOutput::default() },
            samples: Vec::new(),
            notes: Vec::new(),
            window_ns: (scenario.duration_s * 1e9) as i64,
        };
        judge(scenario, &mut data, &solo)
    };
    let v = verdict(clockwork.clone(), &s.scenarios[0]);
    assert_eq!(v.status, Status::Valid, "{:?}", v.reasons);
    assert!(v.notes.iter().any(|n| n.contains("Clockwork dropped")), "{:?}", v.notes);
    let v = verdict(independent, &fixed.scenarios[0]);
    assert_eq!(v.status, Status::Invalid);
    assert!(v.reasons.iter().any(|r| r.contains("queue grew")), "{:?}", v.reasons);
    // deterministic with the seed
    let again =
        simulate(&s.scenarios[0], 1, &inputs(&limits, &solo, &s), &exact, OVERHEADS, &Scheduler::Harness).unwrap();
    assert_eq!(again.requests, clockwork.requests);
}

#[test]
fn space_time_evicts_the_tenant_that_straggles_beside_the_other_and_keeps_both_slos_without_a_predictor() {
    // as above: a batch takes 1 ms alone and 4 ms beside the other's, SLO 3 ms; the scheduler is
    // told nothing of it and learns it from the first batches it measures
    let uniform = r#"{ kind = "uniform", rate = 300.0, spread = 0.0 }"#;
    let s = suite(&two_tenants("streams", r#"scheduler = "space_time""#, "batch = 1", uniform, 3.0));
    let fcfs = suite(&two_tenants("streams", "", "batch = 1", uniform, 3.0));
    let solo = device_profiles(&[(1, 1000.0)]);
    let limits = DeviceLimits::h200();
    let slowdown = Slowdown { per_co_runner: 3.0 };
    let run = |s: &coloc_workloads::suite::Suite| {
        simulate(&s.scenarios[0], 1, &inputs(&limits, &solo, s), &slowdown, OVERHEADS, &Scheduler::Harness).unwrap()
    };
    let (space_time, fcfs) = (run(&s), run(&fcfs));
    assert!(fcfs.tenants.iter().any(|t| t.slo_attainment < 0.05));
    for t in &space_time.tenants {
        assert!(t.slo_attainment >= 0.99, "{}: {}", t.name, t.slo_attainment);
    }
    // batches ran beside each other only while it learnt: none of those formed after the warm-up
    let after_warmup: Vec<BatchRow> = space_time.batches.iter().filter(|b| b.formed_ns >= 0).cloned().collect();
    assert!(!after_warmup.is_empty() && !any_overlap(&after_warmup));
    assert!(any_overlap(&space_time.batches), "it never tried space");
    assert_eq!(measured(&space_time).count(), measured(&fcfs).count());
    // deterministic with the seed
    assert_eq!(run(&s).requests, space_time.requests);
}

#[test]
fn space_time_holds_nothing_back_while_no_tenant_straggles() {
    // beside each other the batches take 1.2 ms, well within half of the 3 ms SLO: every batch
    // goes as it comes, exactly as first come first served
    let poisson = r#"{ kind = "poisson", rate = 400.0 }"#;
    let s = suite(&two_tenants("streams", r#"scheduler = "space_time""#, "batch = 1", poisson, 3.0));
    let fcfs = suite(&two_tenants("streams", "", "batch = 1", poisson, 3.0));
    let solo = device_profiles(&[(1, 1000.0)]);
    let limits = DeviceLimits::h200();
    let mild = Slowdown { per_co_runner: 0.2 };
    let run = |s: &coloc_workloads::suite::Suite| {
        simulate(&s.scenarios[0], 1, &inputs(&limits, &solo, s), &mild, OVERHEADS, &Scheduler::Harness).unwrap()
    };
    let (space_time, fcfs) = (run(&s), run(&fcfs));
    assert!(any_overlap(&fcfs.batches));
    assert_eq!(space_time.batches, fcfs.batches);
    assert_eq!(space_time.requests, fcfs.requests);
}
