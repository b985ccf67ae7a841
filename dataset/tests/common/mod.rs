//! A small dataset that obeys every invariant, written as `coloc measure` would write it, for
//! tests that break one invariant at a time. Two scenarios of the `tiny` model (alone, and a
//! pair in green contexts repeated twice) and the drift reference, every launch of every batch
//! timed at three times its physical floor, arrivals from a seeded generator per run and tenant.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use coloc_dataset::clock::{ClockCheck, ClockMap};
use coloc_dataset::manifest::{CeilingsMeasured, HarnessOverhead, Manifest, SuiteInfo, ToolInfo};
use coloc_dataset::rows::*;
use coloc_dataset::solo_rows::*;
use coloc_dataset::{MANIFEST, SCENARIOS, progress, store};
use coloc_kernels::ceilings::Ceilings;
use coloc_kernels::gpu::DeviceInfo;
use coloc_kernels::ops::OpSpec;
use coloc_kernels::partition::green::GreenSupport;
use coloc_kernels::partition::mig::MigStatus;
use coloc_workloads::batcher::Trigger;
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::ModelSpec;
use coloc_workloads::order::plan_runs;
use coloc_workloads::scenario::{DeviceLimits, LoadOf, Role, SoloShare};
use coloc_workloads::suite::Suite;

pub const SUITE: &str = r#"
name = "synthetic"
[defaults]
duration_s = 1.0
warmup_s = 0.1
min_queries = 50
seeds = { schedule = 5, inputs = 6 }
[reference]
model = "tiny"
batch = 4
every = 2
[[sweep]]
name = "solo"
models = ["tiny"]
batch = [4]
partition = ["time_sliced"]
load = [0.3]
[[sweep]]
name = "pair"
groups = [["tiny", "tiny"]]
batch = [4]
partition = ["green"]
load = [0.3]
repetitions = 2
"#;

/// Uncertainty of every clock map in the synthetic data.
pub const CLOCK_NS: i64 = 1_000;

pub fn ceilings() -> Ceilings {
    Ceilings {
        copy_gbps: 4000.0,
        copy_bytes: 4 << 30,
        fp32_fma_tflops: 50.0,
        tensor_bf16_probe_tflops: Some(900.0),
        tensor_tf32_probe_tflops: Some(450.0),
        cublas_bf16_tflops: 800.0,
        cublas_bf16_best_size: 8192,
        cublas_tf32_tflops: 400.0,
        cublas_f32_tflops: 50.0,
        l2_gbps: 10_000.0,
        l2_cache_bytes: 60 << 20,
    }
}

fn manifest(runs: usize, suite: &Suite) -> Manifest {
    let device = DeviceInfo {
        ordinal: 0,
        name: "NVIDIA H200 (synthetic)".into(),
        uuid: "GPU-synthetic".into(),
        pci_bus_id: "0000:00:00.0".into(),
        compute_capability: (9, 0),
        sm_count: 132,
        l2_bytes: 60 << 20,
        total_memory_bytes: 150_000_000_000,
        memory_bus_width_bits: 6144,
        max_threads_per_sm: 2048,
        max_shared_memory_per_block_optin: 232_448,
        max_shared_memory_per_sm: 233_472,
        registers_per_sm: 65_536,
        stream_priority_range: (-5, 0),
        compute_mode: 0,
        mps_client: false,
        driver_api_version: 13000,
    };
    let map = ClockMap { anchor_host_ns: 0, offset_ns: 0, drift_ns_per_s: 0.0, uncertainty_ns: CLOCK_NS };
    Manifest {
        tool: ToolInfo { version: "0.1.0".into(), git_commit: "synthetic".into(), command: "test".into() },
        started_unix_s: 1.8e9,
        started_utc: "2027-01-15T08:00:00Z".into(),
        host: "test".into(),
        device,
        nvml_settings: None,
        nvml_at_start: None,
        nvrtc_version: "13.0".into(),
        cublas_version: 130100,
        cudnn_version: None,
        mps_control: None,
        mig: MigStatus {
            supported: false,
            current_enabled: None,
            pending_enabled: None,
            instances: vec![],
            note: None,
        },
        green_contexts: GreenSupport {
            usable: true,
            total_sms: 132,
            min_partition_sms: 8,
            alignment_sms: 8,
            group_sms: 8,
            groups: 15,
            remainder_sms: 12,
            error: None,
        },
        limits: DeviceLimits::h200(),
        ceilings: ceilings(),
        ceilings_measured: Some(CeilingsMeasured::InAProcessOfTheirOwn),
        harness_overhead: HarnessOverhead {
            requests: 2000,
            rate_rps: 1000.0,
            solo_kernel_us: 2.0,
            kernel_us: 2.1,
            latency_us: 20.0,
            dispatch_us: 15.0,
            notice_us: 4.0,
            clock: map,
            clock_check: ClockCheck {
                launches: 50,
                outside: 0,
                launch_to_stamp_us: 5.0,
                stamp_to_return_us: 4.0,
                tightest_margin_us: 1.0,
            },
            queued_gap_us: Some(19.0),
        },
        suite: SuiteInfo {
            name: suite.name.clone(),
            path: "synthetic.toml".into(),
            fnv64: "0".into(),
            scenarios: suite.measured().count(),
            runs,
            only: vec![],
            order_seed: suite.order_seed,
            reference_every: suite.reference_every,
        },
        dropped_tables: Vec::new(),
    }
}

/// Per launch of `tiny` at batch 4: (op, launch within op, kind, cost, time in ns).
pub fn launches() -> Vec<(u16, u8, LaunchKind, coloc_kernels::ops::Cost, i64)> {
    let (spec, _) = ModelSpec::resolve("tiny", Path::new(".")).unwrap();
    let g = ModelGraph::build(&spec, &BuildOptions { batch: 4, ..Default::default() }).unwrap();
    let c = ceilings();
    let mut out = Vec::new();
    for (op, node) in g.ops.iter().enumerate() {
        for (i, l) in node.op.launches().into_iter().enumerate() {
            let kind = LaunchKind::of(l.launcher);
            let floor_ns = (c.floor_s(&l.cost) * 1e9).ceil() as i64;
            out.push((op as u16, i as u8, kind, l.cost, (3 * floor_ns).max(2_000)));
        }
    }
    out
}

/// The SLO of every synthetic tenant, ms.
pub fn slo_ms() -> f64 {
    7.0 * solo().0[0].latency_p50_us / 1e3
}

/// Gap between consecutive launches of a batch.
pub const GAP_NS: i64 = 1_000;

pub struct Synthetic {
    pub dir: PathBuf,
    pub keys: Vec<String>,
}

/// A run's requests, batches and kernels: arrivals every `1 / rate` with seeded jitter, batches
/// of 4 when full, run one after another.
fn run_rows(
    run: &str,
    tenant: u16,
    seed: u64,
    window_ns: i64,
    slo_ms: f64,
) -> (Vec<RequestRow>, Vec<BatchRow>, Vec<KernelRow>) {
    let launches = launches();
    let span: i64 = launches.iter().map(|l| l.4).sum::<i64>() + GAP_NS * (launches.len() as i64 - 1);
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 1000) as i64
    };
    let mut arrivals = Vec::new();
    let mut t = -100_000_000; // warm-up of 0.1 s
    while t < window_ns {
        t += 400_000 + 400 * next();
        arrivals.push(t);
    }
    let (mut requests, mut batches, mut kernels) = (Vec::new(), Vec::new(), Vec::new());
    let mut free_at = i64::MIN;
    for (b, chunk) in arrivals.chunks(4).enumerate() {
        let formed = *chunk.last().unwrap() + 2_000;
        let start = formed.max(free_at) + 10_000;
        let mut at = start;
        let sampled = b % 3 == 0;
        for (op, launch, kind, _, dur) in &launches {
            if sampled {
                kernels.push(KernelRow {
                    run: run.into(),
                    tenant: Some(tenant),
                    aggressor: None,
                    batch: b as u32,
                    op: *op,
                    launch: *launch,
                    kind: *kind,
                    start_ns: at,
                    end_ns: at + dur,
                });
            }
            at += dur + GAP_NS;
        }
        let end = start + span;
        let noticed = end + 5_000;
        free_at = noticed;
        batches.push(BatchRow {
            run: run.into(),
            tenant,
            batch: b as u32,
            size: chunk.len() as u16,
            bucket: 4,
            trigger: Trigger::Full,
            formed_ns: formed,
            start_ns: start,
            end_ns: end,
            noticed_ns: noticed,
            sampled,
        });
        for (i, a) in chunk.iter().enumerate() {
            let latency = end - a;
            requests.push(RequestRow {
                run: run.into(),
                tenant,
                request: (4 * b + i) as u32,
                batch: Some(b as u32),
                arrival_ns: *a,
                formed_ns: Some(formed),
                start_ns: Some(start),
                end_ns: Some(end),
                noticed_ns: Some(noticed),
                queue_wait_ns: Some(formed - a),
                dispatch_wait_ns: Some(start - formed),
                gpu_ns: Some(end - start),
                latency_ns: Some(latency),
                slo_met: latency as f64 / 1e6 <= slo_ms,
                warmup: *a < 0,
            });
        }
    }
    (requests, batches, kernels)
}

fn tenant_row(run: &str, tenant: u16, share: SoloShare, sms: Option<u32>, granted: u32, solo_ms: f64) -> TenantRow {
    TenantRow {
        run: run.into(),
        tenant,
        name: if tenant == 0 { "tiny".into() } else { format!("tiny#{}", tenant + 1) },
        model: "tiny".into(),
        batching: BatchingPolicy::Fixed,
        max_batch: 4,
        max_wait_ms: 2.0 * solo_ms,
        arrival: ArrivalKind::Poisson,
        rate_rps: Some(1000.0),
        clients: None,
        load: Some(0.3),
        load_of: LoadOf::Partition,
        slo_ms: 7.0 * solo_ms,
        solo_device_ms: solo_ms,
        solo_device_gpu_ms: solo_ms,
        solo_share_gpu_ms: solo_ms,
        share,
        priority: None,
        sms,
        mps_percent: None,
        granted_sms: granted,
        clock_uncertainty_ns: CLOCK_NS,
        scheduled_requests: 2750,
        measured: 0,
        completed: 0,
        p50_ms: None,
        p50_lo_ms: None,
        p50_hi_ms: None,
        p99_ms: None,
        p99_lo_ms: None,
        p99_hi_ms: None,
        slo_attainment: 1.0,
        throughput_rps: 1000.0,
        mean_batch_size: Some(4.0),
        busy_fraction: 0.1,
        queue_wait_p50_ms: None,
        dispatch_wait_p50_ms: None,
        gpu_p50_ms: Some(solo_ms),
        interference: Some(1.0),
        interference_lo: None,
        interference_hi: None,
        share_effect: 1.0,
    }
}

/// The solo tables of `tiny` at batch 4, on the device and in green contexts of 56 SMs.
pub fn solo() -> (Vec<SoloModelRow>, Vec<SoloOpRow>, Vec<SoloKernelRow>) {
    let launches = launches();
    let c = ceilings();
    let span_ns: i64 = launches.iter().map(|l| l.4).sum::<i64>() + GAP_NS * (launches.len() as i64 - 1);
    let (mut models, mut ops, mut kernels) = (Vec::new(), Vec::new(), Vec::new());
    for (share, granted) in [(SoloShare::Device, 132), (SoloShare::Green { sms: 56 }, 56)] {
        let us = span_ns as f64 / 1e3;
        models.push(SoloModelRow {
            model: "tiny".into(),
            batch: 4,
            share,
            granted_sms: granted,
            seq: None,
            context: None,
            ops: launches.last().unwrap().0 as u32 + 1,
            launches: launches.len() as u32,
            latency_p50_us: us + 3.0,
            latency_p05_us: us + 2.0,
            latency_p95_us: us + 5.0,
            latency_p50_lo_us: us + 2.5,
            latency_p50_hi_us: us + 3.5,
            stamped_p50_us: us,
            replays: 30,
            eager_us: us * 2.0,
            capacity_rps: 4.0 / (us * 1e-6),
        });
        for (op, launch, kind, cost, dur) in &launches {
            kernels.push(SoloKernelRow {
                model: "tiny".into(),
                batch: 4,
                share,
                op: *op,
                launch: *launch,
                kind: *kind,
                name: format!("{kind:?}"),
                flops: cost.flops,
                dram_bytes: cost.dram_bytes,
                unit: cost.unit,
                time_us: Some(*dur as f64 / 1e3),
                floor_us: c.floor_s(cost) * 1e6,
            });
        }
        let mut op_ids: Vec<u16> = launches.iter().map(|l| l.0).collect();
        op_ids.dedup();
        for op in op_ids {
            let ls: Vec<_> = launches.iter().filter(|l| l.0 == op).collect();
            let cost = coloc_kernels::ops::Cost::sum(ls.iter().map(|l| l.3));
            let time = ls.iter().map(|l| l.4).sum::<i64>() + GAP_NS * (ls.len() as i64 - 1);
            ops.push(SoloOpRow {
                model: "tiny".into(),
                batch: 4,
                share,
                op,
                layer: format!("op{op}"),
                kind: "x".into(),
                shape: "x".into(),
                launches: ls.len() as u8,
                flops: cost.flops,
                macs: cost.macs,
                dram_bytes: cost.dram_bytes,
                unit: cost.unit,
                time_us: Some(time as f64 / 1e3),
                floor_us: c.floor_s(&cost) * 1e6,
                tflops: None,
                gbps: None,
                compute_fraction: None,
                memory_fraction: None,
            });
        }
    }
    (models, ops, kernels)
}

/// Writes the synthetic dataset into a fresh directory named after `name`.
pub fn build(name: &str) -> Synthetic {
    let dir = std::env::temp_dir().join(format!("coloc-synthetic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let suite = Suite::parse(SUITE, Path::new("synthetic.toml"), &DeviceLimits::h200()).unwrap();
    let planned = plan_runs(&suite.scenarios, &[], suite.order_seed, suite.reference_every);
    store::save_json(&dir.join(MANIFEST), &manifest(planned.len(), &suite)).unwrap();
    store::save_json(&dir.join(SCENARIOS), &suite.scenarios).unwrap();
    let (models, ops, kernels) = solo();
    let solo_ms = models[0].latency_p50_us / 1e3;
    store::save(&dir, &models).unwrap();
    store::save(&dir, &ops).unwrap();
    store::save(&dir, &kernels).unwrap();
    // the switch profile: tiny after its own as profiled, 5% slower after another model's
    let profiled = models[0].stamped_p50_us;
    let switch = SoloSwitchRow {
        model: "tiny".into(),
        batch: 4,
        after_model: "other".into(),
        after_batch: 1,
        replays: 20,
        after_self_us: profiled,
        after_other_us: profiled * 1.05,
    };
    store::save(&dir, &[switch]).unwrap();
    let (mut runs, mut tenants, mut requests, mut batches, mut krows) = (vec![], vec![], vec![], vec![], vec![]);
    let window_ns = 1_000_000_000;
    for (position, p) in planned.iter().enumerate() {
        let key = p.key();
        let run = RunRow {
            run: key.clone(),
            scenario: p.scenario.name.clone(),
            rep: p.rep as u32,
            role: p.scenario.role,
            partition: p.scenario.partition,
            position: position as u32,
            status: Status::Valid,
            reasons: vec![],
            fixes: vec![],
            notes: vec!["a note".into()],
            started_unix_s: 1.8e9 + position as f64,
            wall_s: 1.2,
            window_ns: Some(window_ns),
        };
        progress::append(&dir, &run).unwrap();
        runs.push(run);
        let green = p.scenario.role == Role::Measured && p.scenario.tenants.len() == 2;
        for t in 0..p.scenario.tenants.len() as u16 {
            let (share, sms, granted) =
                if green { (SoloShare::Green { sms: 56 }, Some(56), 56) } else { (SoloShare::Device, None, 132) };
            tenants.push(tenant_row(&key, t, share, sms, granted, solo_ms));
            let seed = coloc_workloads::scenario::fnv64(key.as_bytes()) ^ t as u64;
            let (r, b, k) = run_rows(&key, t, seed, window_ns, 7.0 * solo_ms);
            requests.extend(r);
            batches.extend(b);
            krows.extend(k);
        }
    }
    store::save(&dir, &runs).unwrap();
    store::save(&dir, &tenants).unwrap();
    store::save::<AggressorRow>(&dir, &[]).unwrap();
    store::save(&dir, &requests).unwrap();
    store::save(&dir, &batches).unwrap();
    store::save(&dir, &krows).unwrap();
    store::save::<DeviceSampleRow>(&dir, &[]).unwrap();
    Synthetic { dir, keys: planned.iter().map(|p| p.key()).collect() }
}

impl Synthetic {
    /// Rewrites table `T` through `f`.
    pub fn edit<T: coloc_dataset::Table>(&self, f: impl FnOnce(&mut Vec<T>)) {
        let mut rows: Vec<T> = store::load(&self.dir).unwrap();
        f(&mut rows);
        store::save(&self.dir, &rows).unwrap();
    }
}

impl Drop for Synthetic {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
