//! How many requests the simulator serves per second of one core: one run of the serving
//! workload (`serving/mixed.toml`, four models under MPS shares, the space-only plan near its
//! goodput, about 7,000 requests) from the committed solo profiles, each batch timed by the
//! solo-at-share predictor (the simulator's own cost, not a predictor's). Issue 10 asks for 1M
//! simulated requests per second or more.

use std::hint::black_box;
use std::path::Path;

use coloc_dataset::Dataset;
use coloc_harness::plan::PlanInputs;
use coloc_harness::solo::SoloProfiles;
use coloc_predictors::solo::SoloAtShare;
use coloc_schedulers::estimate::Judge;
use coloc_schedulers::menu::Menu;
use coloc_schedulers::policy::Policy;
use coloc_schedulers::sim::{Costs, Scheduler, simulate};
use coloc_schedulers::workload::Workload;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn sim(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("data/h200-serve-profiles");
    let manifest = Dataset::open(&dir).unwrap().manifest().unwrap();
    let solo = SoloProfiles::load(&dir).unwrap();
    let workload = Workload::load(&root.join("serving/mixed.toml")).unwrap();
    let menu = Menu::new(&solo, &workload, &manifest.limits).unwrap();
    let overheads = Costs::of(&manifest.harness_overhead);
    let judge = Judge { workload: &workload, menu: &menu, overheads, predictor: None };
    let plan = Policy::SpaceOnly.plan(&judge, 0.33).unwrap().unwrap();
    let scenario = plan.scenarios(&workload, &menu).remove(0);
    let inputs = PlanInputs { limits: &manifest.limits, solo: &solo, base_dir: &workload.base_dir };
    let requests =
        simulate(&scenario, 1, &inputs, &SoloAtShare, overheads, &Scheduler::Harness).unwrap().requests.len();
    let mut group = c.benchmark_group("simulator");
    group.throughput(Throughput::Elements(requests as u64));
    group.bench_function(format!("one run of serving/mixed.toml ({requests} requests)"), |b| {
        b.iter(|| {
            black_box(simulate(black_box(&scenario), 1, &inputs, &SoloAtShare, overheads, &Scheduler::Harness).unwrap())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = sim
}
criterion_main!(benches);
