//! What one prediction and one update cost, per predictor, on real queries of `data/h200`
//! (fitted on a third of its batches; predictions cycle through 4,096 others).

use std::hint::black_box;
use std::path::Path;

use coloc_dataset::Dataset;
use coloc_predictors::abacus::AbacusParams;
use coloc_predictors::counters::Utilisations;
use coloc_predictors::gbt::GbtParams;
use coloc_predictors::gpulet::{GpuletEwmaParams, GpuletParams};
use coloc_predictors::igniter::IgniterParams;
use coloc_predictors::online::{OnlineCoarseParams, OnlineLearning};
use coloc_predictors::perkernel::{KernelProfiles, PerKernelParams};
use coloc_predictors::predictor::{Fit, Online, Predictor};
use coloc_predictors::query::{Example, examples};
use coloc_predictors::solo::SoloAtShareParams;
use criterion::{Criterion, criterion_group, criterion_main};

fn predict_each<P: Predictor>(c: &mut Criterion, model: &P, queries: &[Example]) {
    let mut i = 0;
    c.bench_function(&format!("predict/{}", model.name()), |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(model.predict(black_box(&queries[i].query)))
        })
    });
}

fn update_each<P: Online + Clone>(c: &mut Criterion, model: &P, queries: &[Example]) {
    let mut model = model.clone();
    let mut i = 0;
    c.bench_function(&format!("update/{}", model.name()), |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            let e = &queries[i];
            model.update(black_box(&e.query), black_box(e.measured_us))
        })
    });
}

fn cost(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ds = Dataset::open(&root.join("data/h200")).expect("data/h200");
    let ex = examples(&ds).expect("examples");
    let kernels = KernelProfiles::from_dataset(&ds).expect("solo kernel profiles");
    let counters = Utilisations::load(&root.join("data/h200-counters")).expect("data/h200-counters");
    let train: Vec<&Example> = ex.items.iter().step_by(3).collect();
    let queries: Vec<Example> = ex.items.iter().skip(1).step_by(29).take(4096).cloned().collect();
    let gpulet = GpuletParams { utilisations: counters.clone() };

    predict_each(c, &SoloAtShareParams.fit(&train).unwrap(), &queries);
    let rls = OnlineCoarseParams::default().fit(&train).unwrap();
    let rls_ph = OnlineCoarseParams::with_drift_detection().fit(&train).unwrap();
    let ewma = GpuletEwmaParams { gpulet: gpulet.clone(), alpha: 0.05 }.fit(&train).unwrap();
    predict_each(c, &rls, &queries);
    predict_each(c, &rls_ph, &queries);
    predict_each(c, &gpulet.fit(&train).unwrap(), &queries);
    predict_each(c, &ewma, &queries);
    predict_each(c, &IgniterParams { utilisations: counters }.fit(&train).unwrap(), &queries);
    predict_each(c, &AbacusParams::default().fit(&train).unwrap(), &queries);
    predict_each(c, &GbtParams::default().fit(&train).unwrap(), &queries);
    let per_kernel = PerKernelParams::new(kernels.clone()).with_drift_detection().fit(&train).unwrap();
    predict_each(c, &per_kernel, &queries);
    let per_kernel_sgd = PerKernelParams::new(kernels).learnt_by(OnlineLearning::sgd()).fit(&train).unwrap();
    let sgd = OnlineLearning::sgd().fit(&train).unwrap();
    predict_each(c, &sgd, &queries);
    update_each(c, &rls, &queries);
    update_each(c, &sgd, &queries);
    update_each(c, &per_kernel, &queries);
    update_each(c, &per_kernel_sgd, &queries);
    update_each(c, &rls_ph, &queries);
    update_each(c, &ewma, &queries);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = cost
}
criterion_main!(benches);
