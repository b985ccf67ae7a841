//! The simulator on hand-made profiles and predictors, where the right answer is known.

mod common;

use std::path::Path;

use coloc_harness::plan::PlanInputs;
use coloc_harness::solo::SoloProfiles;
use coloc_schedulers::sim::{Costs, Scheduler, simulate};
use coloc_workloads::scenario::{DeviceLimits, SoloShare};
use common::{OVERHEADS, Slowdown, inputs, profile, slowed, suite};

/// resnet50 at batch 1 alone on one stream, a request every 2 ms.
fn alone() -> coloc_workloads::suite::Suite {
    suite(
        r#"
name = "t"
[[scenario]]
name = "alone"
partition = "time_sliced"
duration_s = 1.0
warmup_s = 0.1
[[scenario.tenant]]
model = "resnet50"
batch = 1
arrival = { kind = "uniform", rate = 500.0, spread = 0.0 }
"#,
    )
}

#[test]
fn a_lone_tenant_at_a_constant_rate_sees_exactly_its_dispatch_and_gpu_time() {
    // batch 1, one request every 2 ms, 1 ms of GPU time: no request ever waits
    let s = alone();
    let solo = SoloProfiles { models: vec![profile("resnet50", 1, SoloShare::Device, 1000.0)], ..Default::default() };
    let run = slowed(&s, &solo, 0.5).unwrap();
    let t = &run.tenants[0];
    // end - arrival = dispatch + GPU time, for every request
    assert!((t.p50_ms.unwrap() - 1.010).abs() < 1e-9, "{:?}", t.p50_ms);
    assert!((t.p99_ms.unwrap() - 1.010).abs() < 1e-9, "{:?}", t.p99_ms);
    assert_eq!(t.slo_attainment, 1.0);
    assert!((t.throughput_rps - 500.0).abs() <= 1.0, "{}", t.throughput_rps);
    assert!((t.busy_fraction - 0.5).abs() < 0.01, "{}", t.busy_fraction);
    assert_eq!(t.interference, Some(1.0));
    assert!(run.requests.iter().all(|r| r.latency_ns == Some(1_010_000)));
}

/// resnet50 and bert_base at batch 1 on one stream, arriving together every 5 ms.
fn turns() -> coloc_workloads::suite::Suite {
    suite(
        r#"
name = "t"
[[scenario]]
name = "turns"
partition = "time_sliced"
duration_s = 1.0
warmup_s = 0.1
[[scenario.tenant]]
model = "resnet50"
batch = 1
arrival = { kind = "uniform", rate = 200.0, spread = 0.0 }
[[scenario.tenant]]
model = "bert_base"
batch = 1
arrival = { kind = "uniform", rate = 200.0, spread = 0.0 }
"#,
    )
}

#[test]
fn on_one_stream_a_batch_after_another_models_takes_its_switch_factor_and_after_its_own_not() {
    let two = turns();
    let mut solo = SoloProfiles {
        models: vec![
            profile("resnet50", 1, SoloShare::Device, 1000.0),
            profile("bert_base", 1, SoloShare::Device, 1000.0),
        ],
        ..Default::default()
    };
    solo.switch.insert("resnet50", 1, 1.2);
    solo.switch.insert("bert_base", 1, 1.5);
    let run = slowed(&two, &solo, 0.0).unwrap();
    // they alternate: every resnet50 batch but the very first follows a bert_base batch
    let gpu_ms = |tenant: u16| -> Vec<f64> {
        run.batches.iter().filter(|b| b.tenant == tenant).map(|b| (b.end_ns - b.start_ns) as f64 / 1e6).collect()
    };
    assert!(gpu_ms(0).iter().all(|ms| (ms - 1.2).abs() < 1e-6 || (ms - 1.0).abs() < 1e-6));
    assert!(gpu_ms(0).iter().filter(|ms| (**ms - 1.2).abs() < 1e-6).count() >= gpu_ms(0).len() - 1);
    assert!(gpu_ms(1).iter().all(|ms| (ms - 1.5).abs() < 1e-6), "{:?}", gpu_ms(1));
    // bert_base waits for resnet50's 1.2 ms, then takes 1.5 ms
    assert!((run.tenants[1].p50_ms.unwrap() - 2.710).abs() < 1e-9, "{:?}", run.tenants[1].p50_ms);
    // alone on the stream a tenant only ever follows itself
    let one = alone();
    let run = slowed(&one, &solo, 0.0).unwrap();
    assert!(run.batches.iter().all(|b| b.end_ns - b.start_ns == 1_000_000));
}

#[test]
fn switch_factors_from_a_measured_dataset_find_mobilenet_at_batch_1() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200-clockwork");
    let f = coloc_schedulers::switch::from_dataset(&dir).unwrap();
    let m = f.factor("mobilenet_v2", 1);
    assert!((1.08..1.16).contains(&m), "{m}");
    assert!(f.factor("resnet50", 1) < 1.01 && f.factor("vit_b16", 8) < 1.01);
    assert!(f.iter().count() >= 10);
    // runs in the state change are left out: in data/h200-transformers 24 of 44 one-stream
    // tenants ran fast, and mobilenet_v2 b1 after another model is still 1.1x; in
    // data/h200-plans every one-stream run followed an MPS run, and nothing is left
    let dir = |name: &str| Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../data/h200-{name}"));
    let m = coloc_schedulers::switch::from_dataset(&dir("transformers")).unwrap().factor("mobilenet_v2", 1);
    assert!((1.08..1.16).contains(&m), "{m}");
    assert!(coloc_schedulers::switch::from_dataset(&dir("plans")).unwrap().is_empty());
}

#[test]
fn co_runners_at_dispatch_slow_a_batch_and_an_overloaded_tenant_misses_its_slo() {
    // two tenants on equal green shares, each batch 1 at 900 req/s, 1 ms solo: alone each
    // would keep up (0.9 busy); beside the other every batch takes 1.5 ms, and queues grow
    let text = r#"
name = "t"
[[scenario]]
name = "pair"
partition = "green"
duration_s = 1.0
warmup_s = 0.1
slo_ms = 3.0
[[scenario.tenant]]
model = "resnet50"
batch = 1
sms = 56
arrival = { kind = "uniform", rate = 900.0, spread = 0.0 }
[[scenario.tenant]]
model = "bert_base"
batch = 1
sms = 56
arrival = { kind = "uniform", rate = 900.0, spread = 0.0 }
"#;
    let s = suite(text);
    let green = SoloShare::Green { sms: 56 };
    let solo = SoloProfiles {
        models: vec![
            profile("resnet50", 1, SoloShare::Device, 500.0),
            profile("resnet50", 1, green, 1000.0),
            profile("bert_base", 1, SoloShare::Device, 500.0),
            profile("bert_base", 1, green, 1000.0),
        ],
        ..Default::default()
    };
    let calm = slowed(&s, &solo, 0.0).unwrap();
    let slow = slowed(&s, &solo, 0.5).unwrap();
    for (a, b) in calm.tenants.iter().zip(&slow.tenants) {
        assert_eq!(a.slo_attainment, 1.0, "{}: without interference every request keeps the SLO", a.name);
        assert!(a.p99_ms.unwrap() < 1.1);
        assert!(b.interference.unwrap() > 1.4, "{}: {:?}", b.name, b.interference);
        assert!(b.slo_attainment < 0.5, "{}: {} keep the SLO at 1.35x capacity", b.name, b.slo_attainment);
        assert!(b.p99_ms.unwrap() > 10.0 * a.p99_ms.unwrap());
    }
    // the same seeds give the same run, to the nanosecond
    let again = slowed(&s, &solo, 0.5).unwrap();
    assert_eq!(again.requests, slow.requests);
    assert_eq!(again.batches, slow.batches);
}

#[test]
fn time_sliced_batches_take_turns_on_the_one_stream() {
    // two tenants arriving together every 5 ms, 1 ms of GPU each: the second in tenant order
    // waits for the first's batch, and neither is slowed by the other while it runs
    let s = turns();
    let solo = SoloProfiles {
        models: vec![
            profile("resnet50", 1, SoloShare::Device, 1000.0),
            profile("bert_base", 1, SoloShare::Device, 1000.0),
        ],
        ..Default::default()
    };
    let run = slowed(&s, &solo, 0.5).unwrap();
    let (first, second) = (&run.tenants[0], &run.tenants[1]);
    assert!((first.p99_ms.unwrap() - 1.010).abs() < 1e-9, "{:?}", first.p99_ms);
    // dispatched at the same instant, it starts when the first batch ends
    assert!((second.p50_ms.unwrap() - 2.010).abs() < 1e-9, "{:?}", second.p50_ms);
    assert_eq!(second.interference, Some(1.0));
    let b: Vec<_> = run.batches.iter().filter(|b| b.batch == 3).collect();
    assert_eq!(b.len(), 2);
    assert_eq!(b[1].start_ns, b[0].end_ns);
    // with the GPU's gap between a batch and the one queued behind it (19 us): the second starts
    // that much later; the first, launched on an idle stream, does not pay it
    let limits = DeviceLimits::h200();
    let gap = Costs { queued_gap_ns: 19_000, ..OVERHEADS };
    let run = simulate(
        &s.scenarios[0],
        1,
        &inputs(&limits, &solo, &s),
        &Slowdown { per_co_runner: 0.5 },
        gap,
        &Scheduler::Harness,
    )
    .unwrap();
    assert!((run.tenants[0].p99_ms.unwrap() - 1.010).abs() < 1e-9, "{:?}", run.tenants[0].p99_ms);
    assert!((run.tenants[1].p50_ms.unwrap() - 2.029).abs() < 1e-9, "{:?}", run.tenants[1].p50_ms);
    let b: Vec<_> = run.batches.iter().filter(|b| b.batch == 3).collect();
    assert_eq!(b[1].start_ns, b[0].end_ns + 19_000);
}

#[test]
fn a_missing_solo_profile_is_named() {
    let s = suite(
        r#"
name = "t"
[[scenario]]
name = "alone"
partition = "green"
[[scenario.tenant]]
model = "vgg16"
batch = 8
sms = 64
load = 0.5
"#,
    );
    let solo = SoloProfiles { models: vec![profile("vgg16", 8, SoloShare::Device, 1000.0)], ..Default::default() };
    let err = slowed(&s, &solo, 0.0).unwrap_err().to_string();
    assert!(err.contains("no solo profile of vgg16 at batch 8"), "{err}");
}

/// On a measured run of `data/h200`: the simulation plans exactly what the harness planned (the
/// same requests at the same nanoseconds), and with no interference it predicts no more
/// latency than was measured under it.
#[test]
fn a_simulated_run_of_the_committed_dataset_has_its_exact_arrivals() {
    use coloc_dataset::Dataset;
    use coloc_dataset::rows::{RequestRow, RunRow};
    use coloc_predictors::solo::SoloAtShare;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("data/h200");
    let ds = Dataset::open(&dir).unwrap();
    let manifest = ds.manifest().unwrap();
    let solo = SoloProfiles::load(&dir).unwrap();
    let scenarios = ds.scenarios().unwrap();
    let runs: Vec<RunRow> = ds.load().unwrap();
    let name = "pairs/resnet50+bert_base/b8/green-56_56/load0.3";
    let run = runs.iter().find(|r| r.scenario == name).unwrap();
    let scenario = scenarios.iter().find(|s| s.name == name).unwrap();
    let inputs = PlanInputs { limits: &manifest.limits, solo: &solo, base_dir: &root.join("suites") };
    let sim = simulate(scenario, run.rep as usize, &inputs, &SoloAtShare, OVERHEADS, &Scheduler::Harness).unwrap();
    // data/h200 is committed slim: this run's requests are in data/h200-subset
    let measured: Vec<RequestRow> = coloc_dataset::store::load::<RequestRow>(&root.join("data/h200-subset"))
        .unwrap()
        .into_iter()
        .filter(|r| r.run == run.run)
        .collect();
    for tenant in 0..2u16 {
        let arrivals = |rows: &[RequestRow]| -> Vec<(u32, i64)> {
            let mut v: Vec<(u32, i64)> =
                rows.iter().filter(|r| r.tenant == tenant).map(|r| (r.request, r.arrival_ns)).collect();
            v.sort();
            v
        };
        let (simulated, measured_arrivals) = (arrivals(&sim.requests), arrivals(&measured));
        assert!(simulated.len() > 500, "{}", simulated.len());
        assert_eq!(simulated, measured_arrivals, "tenant {tenant}: the same requests at the same times");
    }
    let tenants: Vec<coloc_dataset::rows::TenantRow> =
        ds.load::<coloc_dataset::rows::TenantRow>().unwrap().into_iter().filter(|t| t.run == run.run).collect();
    for (s, m) in sim.tenants.iter().zip(&tenants) {
        let (p, q) = (s.p50_ms.unwrap(), m.p50_ms.unwrap());
        assert!(p <= q && p > 0.8 * q, "{}: solo-at-share p50 {p} ms against {q} ms measured", s.name);
    }
}
