//! `coloc schedule` (one policy's plan: printed, simulated, written as a suite, measured) and
//! `coloc compare-schedulers` (every policy's goodput, side by side).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use coloc_dataset::Dataset;
use coloc_dataset::manifest::Manifest;
use coloc_harness::plan::PlanInputs;
use coloc_harness::solo::SoloProfiles;
use coloc_predictors::saved::{Fitted, SavedPredictor};
use std::collections::BTreeMap;

use coloc_schedulers::compare::{self, MeasuredGoodput, MeasuredPlan, MeasuredRegret, Standing};
use coloc_schedulers::estimate::Judge;
use coloc_schedulers::goodput::{Search, Simulator, search};
use coloc_schedulers::menu::Menu;
use coloc_schedulers::placement::{Placement, suite_toml};
use coloc_schedulers::policy::Policy;
use coloc_schedulers::sim::Costs;
use coloc_schedulers::workload::Workload;
use coloc_workloads::scenario::SoloShare;

use crate::cli::{CompareSchedulersArgs, MeasureArgs, PolicyArg, ScheduleArgs, ServingArgs};
use crate::table::Table;

/// What every scheduling command reads, checked.
struct Setup {
    workload: Workload,
    manifest: Manifest,
    solo: SoloProfiles,
    menu: Menu,
    overheads: Costs,
    truth: SavedPredictor,
}

impl Setup {
    fn load(args: &ServingArgs) -> anyhow::Result<Setup> {
        let workload = Workload::load(&args.workload)?;
        let ds = Dataset::open(&args.profiles)?;
        let manifest = ds.manifest()?;
        let mut solo = SoloProfiles::load(&args.profiles)?;
        super::take_switch_factors(&mut solo, &args.switch_from)?;
        let menu = Menu::new(&solo, &workload, &manifest.limits)
            .with_context(|| format!("the solo profiles of {}", args.profiles.display()))?;
        for m in &workload.models {
            anyhow::ensure!(
                !menu.shares(&m.model).is_empty(),
                "{} holds no {:?} share of {} at every batch size of {}: measure them (suites/serve-profiles.toml)",
                args.profiles.display(),
                workload.mechanism,
                m.model,
                args.workload.display()
            );
        }
        let overheads = Costs::of(&manifest.harness_overhead);
        let truth = load_predictor(&args.truth, &workload, &menu)?;
        Ok(Setup { workload, manifest, solo, menu, overheads, truth })
    }

    fn judge(&self) -> Judge<'_> {
        Judge { workload: &self.workload, menu: &self.menu, overheads: self.overheads, predictor: None }
    }

    fn inputs(&self) -> PlanInputs<'_> {
        PlanInputs { limits: &self.manifest.limits, solo: &self.solo, base_dir: &self.workload.base_dir }
    }
}

/// A saved predictor, refused (naming what it lacks) unless it can answer for every model of
/// the workload at every batch size and share a planner may choose.
fn load_predictor(path: &Path, workload: &Workload, menu: &Menu) -> anyhow::Result<SavedPredictor> {
    let saved = SavedPredictor::load(path)?;
    for m in &workload.models {
        for &b in &workload.batches {
            for &share in std::iter::once(&SoloShare::Device).chain(menu.shares(&m.model)) {
                saved.fitted.covers(&m.model, b as u32, share).with_context(|| {
                    format!("{} cannot plan or simulate {} at batch {b} on {}", path.display(), m.model, share.label())
                })?;
            }
        }
    }
    Ok(saved)
}

/// A predictor's short name: its file's stem.
fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn print_placement(p: &Placement) {
    println!("{} at x{:.3} of the workload's rates, on {} GPU(s):", p.policy, p.scale, p.gpus_used());
    let mut t = Table::new(&["gpu", "<mechanism", "<tenant", "<share", "batch", "rate/s", "wait ms", "planned us"]);
    for (g, gpu) in p.gpus.iter().enumerate() {
        for x in &gpu.tenants {
            t.row(vec![
                g.to_string(),
                gpu.partition.name().into(),
                x.name.clone(),
                x.share.label(),
                x.batch.to_string(),
                format!("{:.0}", x.rate),
                format!("{:.2}", x.max_wait_ms),
                format!("{:.0}", x.planned_us),
            ]);
        }
    }
    println!("{}", t.render());
}

pub fn run(args: &ScheduleArgs) -> anyhow::Result<ExitCode> {
    let setup = Setup::load(&args.serving)?;
    let planner = match &args.predictor {
        Some(p) => Some(load_predictor(p, &setup.workload, &setup.menu)?),
        None => None,
    };
    let needs = |what: &str| anyhow::anyhow!("--policy {what} plans with a predictor: give --predictor FILE");
    let label = args.predictor.as_deref().map(stem).unwrap_or_default();
    let policy = match args.policy {
        PolicyArg::TimeSharing => Policy::TimeSharing,
        PolicyArg::SpaceOnly => Policy::SpaceOnly,
        PolicyArg::Proportional => Policy::Proportional,
        PolicyArg::Gpulet => Policy::Gpulet { interference: None },
        PolicyArg::GpuletInt => {
            Policy::Gpulet { interference: Some(&planner.as_ref().ok_or_else(|| needs("gpulet-int"))?.fitted) }
        }
        PolicyArg::Greedy => {
            Policy::Greedy { predictor: &planner.as_ref().ok_or_else(|| needs("greedy"))?.fitted, label: &label }
        }
        PolicyArg::Clockwork => Policy::Clockwork,
        PolicyArg::Fcfs => Policy::Fcfs,
        PolicyArg::SpaceTime => Policy::SpaceTime,
        PolicyArg::Abacus => {
            let file = args.predictor.as_deref().ok_or_else(|| needs("abacus"))?;
            Policy::Abacus { predictor: &planner.as_ref().ok_or_else(|| needs("abacus"))?.fitted, label: &label, file }
        }
    };
    let judge = setup.judge();
    let inputs = setup.inputs();
    let sim = Simulator { inputs: &inputs, truth: &setup.truth.fitted, overheads: setup.overheads };
    let placement = if args.goodput {
        let g = search(&policy, &judge, &sim, &Search::default())?;
        println!(
            "goodput of {}: {:.0} requests/s (x{:.3} of the workload's rates)",
            g.policy,
            g.rate,
            g.scale.unwrap_or(0.0)
        );
        g.best.map(|b| b.placement)
    } else {
        policy.plan(&judge, args.scale)?
    };
    let Some(placement) = placement else {
        println!(
            "{} finds no plan for {} within its {} GPU(s)",
            policy.name(),
            args.serving.workload.display(),
            setup.workload.gpus
        );
        return Ok(ExitCode::FAILURE);
    };
    print_placement(&placement);
    if args.simulate {
        let judged = sim.judge(placement.clone(), &judge, &policy.scheduler())?;
        let mut t = Table::new(&["<tenant", "rate/s", "SLO ms", "p50 ms", "p99 ms", "SLO met"]);
        for r in &judged.tenants {
            let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
            t.row(vec![
                r.name.clone(),
                format!("{:.0}", r.rate_rps.unwrap_or(0.0)),
                format!("{:.2}", r.slo_ms),
                ms(r.p50_ms),
                ms(r.p99_ms),
                pct(r.slo_attainment),
            ]);
        }
        println!("simulated with {} ({}):\n{}", setup.truth.name, args.serving.truth.display(), t.render());
    }
    // written where it is read from: a scheduler's predictor file is named from the suite's
    // directory
    let text_in = |dir: &Path| -> anyhow::Result<String> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(suite_toml(
            &format!("{}-{}", setup.workload.name, policy.name()),
            &format!("the plan of {} for {}", policy.name(), args.serving.workload.display()),
            &[&placement],
            &setup.workload,
            dir,
        ))
    };
    if let Some(path) = &args.suite {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        write(path, text_in(dir)?.as_bytes())?;
        println!("wrote the plan as a suite to {}", path.display());
    }
    if let Some(dir) = &args.measure {
        let suite = dir.join("plan.toml");
        write(&suite, text_in(dir)?.as_bytes())?;
        return super::measure::run(&MeasureArgs {
            gpu: crate::cli::GpuArgs { device: args.gpu.device },
            suite,
            out: dir.join("dataset"),
            resume: false,
            retry_failed: false,
            only: Vec::new(),
            ncu: false,
            predictor: Some(args.serving.truth.clone()),
        });
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[derive(serde::Serialize)]
struct ComparisonFile<'a> {
    workload: String,
    profiles: String,
    truth: String,
    predictors: Vec<String>,
    attainment: f64,
    standings: &'a [Standing],
    measured_plans: &'a [MeasuredPlan],
    measured_goodput: &'a BTreeMap<String, MeasuredGoodput>,
    measured_regret: &'a BTreeMap<String, MeasuredRegret>,
}

fn comparison_csv(
    standings: &[Standing],
    measured: &BTreeMap<String, MeasuredGoodput>,
    measured_regret: &BTreeMap<String, MeasuredRegret>,
) -> String {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let mut out = String::from(
        "policy,goodput_rps,scale,vs_time_sharing,gpus,min_attainment,regret,measured_held_rps,measured_failed_above_rps,measured_regret,measured_regret_at_least\n",
    );
    for s in standings {
        let g = &s.goodput;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            g.policy,
            g.rate,
            opt(g.scale),
            opt(s.vs_time_sharing),
            g.best.as_ref().map_or(String::new(), |b| b.placement.gpus_used().to_string()),
            opt(g.best.as_ref().map(|b| b.min_attainment)),
            opt(s.regret),
            opt(measured.get(&g.policy).and_then(|m| m.held)),
            opt(measured.get(&g.policy).and_then(|m| m.failed_above)),
            opt(measured_regret.get(&g.policy).map(|r| r.regret)),
            measured_regret.get(&g.policy).map_or(String::new(), |r| r.at_least.to_string()),
        ));
    }
    out
}

pub fn compare(args: &CompareSchedulersArgs) -> anyhow::Result<ExitCode> {
    let setup = Setup::load(&args.serving)?;
    let mut files: Vec<PathBuf> = args.predictor.clone();
    if !files.contains(&args.serving.truth) {
        files.push(args.serving.truth.clone());
    }
    let planners: Vec<(String, SavedPredictor)> = files
        .iter()
        .map(|p| Ok((stem(p), load_predictor(p, &setup.workload, &setup.menu)?)))
        .collect::<anyhow::Result<_>>()?;
    let mut policies =
        vec![Policy::TimeSharing, Policy::SpaceOnly, Policy::Proportional, Policy::Gpulet { interference: None }];
    for (_, p) in &planners {
        if matches!(p.fitted, Fitted::Gpulet(_)) {
            policies.push(Policy::Gpulet { interference: Some(&p.fitted) });
        }
    }
    for (label, p) in &planners {
        policies.push(Policy::Greedy { predictor: &p.fitted, label });
    }
    // the runtime schedulers; Abacus with each Abacus-style network given
    policies.extend([Policy::Clockwork, Policy::Fcfs, Policy::SpaceTime]);
    for ((label, p), file) in planners.iter().zip(&files) {
        if matches!(p.fitted, Fitted::Abacus(_)) {
            policies.push(Policy::Abacus { predictor: &p.fitted, label, file });
        }
    }
    let oracle = format!("greedy+{}", stem(&args.serving.truth));
    let judge = setup.judge();
    let inputs = setup.inputs();
    let sim = Simulator { inputs: &inputs, truth: &setup.truth.fitted, overheads: setup.overheads };
    let settings = Search::default();
    let t0 = std::time::Instant::now();
    let standings = compare::compare(&policies, &judge, &sim, &settings, Some(&oracle))?;
    println!(
        "{}: {} models, {:.0} requests/s at scale 1, {} GPU(s); simulated with {} ({}); {} policies in {:.1} s",
        args.serving.workload.display(),
        setup.workload.models.len(),
        setup.workload.total_rate(),
        setup.workload.gpus,
        setup.truth.name,
        args.serving.truth.display(),
        policies.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut measured_plans = Vec::new();
    for dir in &args.measured {
        measured_plans.extend(compare::measured_plans(&Dataset::open(dir)?, settings.attainment)?);
    }
    // every measured plan counts for each policy that makes that very plan at its rate
    let pooled = compare::pooled(&measured_plans, &policies, &judge)?;
    let measured = compare::measured_goodput(&pooled.plans);
    let measured_regret = compare::measured_regret(&measured, &oracle);
    let measured_baseline = measured.get(compare::BASELINE).and_then(|m| m.held);
    let mut t = Table::new(&[
        "<policy",
        "goodput/s",
        "x time-sharing",
        "GPUs",
        "min SLO met",
        "regret",
        "measured held/s",
        "failed/s",
        "x time-sharing",
        "regret",
    ]);
    let opt_x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    // measured plans that are not the plan their policy makes now at their rate (planned before
    // the simulator or the profiles changed): shown, marked
    let earlier = &pooled.stale;
    for s in &standings {
        let g = &s.goodput;
        let mark = if earlier.contains(&g.policy) { "*" } else { "" };
        let m = measured.get(&g.policy).and_then(|m| m.held);
        let failed = measured.get(&g.policy).and_then(|m| m.failed_above);
        t.row(vec![
            g.policy.clone(),
            format!("{:.0}", g.rate),
            opt_x(s.vs_time_sharing),
            g.best.as_ref().map_or("-".into(), |b| b.placement.gpus_used().to_string()),
            g.best.as_ref().map_or("-".into(), |b| pct(b.min_attainment)),
            s.regret.map_or("-".into(), pct),
            m.map_or("-".into(), |v| format!("{v:.0}{mark}")),
            failed.map_or("-".into(), |v| format!("{v:.0}{mark}")),
            opt_x(m.zip(measured_baseline).map(|(a, b)| a / b)),
            measured_regret.get(&g.policy).map_or("-".into(), ToString::to_string),
        ]);
    }
    println!("{}", t.render());
    println!(
        "goodput: the highest rate at which every tenant has {} of its requests within its SLO, simulated; regret against {oracle}",
        pct(settings.attainment)
    );
    if !measured_plans.is_empty() {
        println!(
            "measured: of {} plans measured, the highest rate that held and the lowest above it that did not (the goodput on the GPU lies between); a plan measured under one policy's name counts for every policy that makes the same plan at that rate; regret against {oracle}'s highest rate that held (>=: a lower bound, from the lowest rate that failed where none held)",
            measured_plans.len()
        );
    }
    if !earlier.is_empty() {
        println!(
            "  * measured from plans other than the one the policy makes now (planned with an earlier simulator or other profiles): {}",
            earlier.join(", ")
        );
    }
    for s in &standings {
        if let Some(b) = &s.goodput.best {
            let tenants: Vec<String> = b
                .placement
                .gpus
                .iter()
                .flat_map(|g| g.tenants.iter().map(|t| format!("{} {} b{}", t.name, t.share.label(), t.batch)))
                .collect();
            println!("  {}: {}", s.goodput.policy, tenants.join(", "));
        }
    }
    if let Some(dir) = &args.out {
        let plans = compare::plans_to_measure(&standings, &policies, &judge, &args.measure_at)?;
        let refs: Vec<&Placement> = plans.iter().collect();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let suite = suite_toml(
            &format!("{}-plans", setup.workload.name),
            &format!(
                "every policy's plan for {} at 0.9, 1 and 1.1 times its simulated goodput",
                args.serving.workload.display()
            ),
            &refs,
            &setup.workload,
            dir,
        );
        let file = ComparisonFile {
            workload: args.serving.workload.display().to_string(),
            profiles: args.serving.profiles.display().to_string(),
            truth: args.serving.truth.display().to_string(),
            predictors: files.iter().map(|p| p.display().to_string()).collect(),
            attainment: settings.attainment,
            standings: &standings,
            measured_plans: &measured_plans,
            measured_goodput: &measured,
            measured_regret: &measured_regret,
        };
        let outputs = [
            ("comparison.json", serde_json::to_vec_pretty(&file)?),
            ("comparison.csv", comparison_csv(&standings, &measured, &measured_regret).into_bytes()),
            ("plans.toml", suite.into_bytes()),
        ];
        for (name, bytes) in outputs {
            write(&dir.join(name), &bytes)?;
        }
        println!("wrote comparison.json, comparison.csv and plans.toml ({} plans) to {}", plans.len(), dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
