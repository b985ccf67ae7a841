//! `coloc pipeline MODEL --measure DIR`: ODIN, least-loaded and static scheduling of one
//! pipelined model measured on the GPU, beside the simulator's forecast of the same pipeline
//! from the measured profiles.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use coloc_schedulers::pipeline::measured::{MeasureSpec, MeasuredPipeline, StressEpisode, batches_csv, judge, measure};
use coloc_schedulers::pipeline::{Episode, Operators, Params, PipelineSpec, Policy, simulate};
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::{SoloShare, StressorName};

use super::{open_gpu, write_json};
use crate::cli::PipelineArgs;
use crate::table::Table;

pub fn run(args: &PipelineArgs, dir: &Path) -> anyhow::Result<ExitCode> {
    let stressor: StressorName = serde_json::from_value(serde_json::Value::String(args.stressor.clone()))
        .with_context(|| format!("--stressor {}: not one of fma, stream, l2, smem, chase", args.stressor))?;
    let stress: StressEpisode = args.stress.parse()?;
    let (model, _) = ModelSpec::resolve(&args.model, Path::new("."))?;
    let params = Params { window: args.window, threshold: args.threshold, switch_us: args.switch_us };
    let plan = MeasureSpec {
        model,
        batch: args.batch as usize,
        elements: args.elements,
        sms: args.sms,
        rate_rps: args.rate,
        load: args.load,
        duration_s: args.duration_s,
        slo_ms: args.slo_ms,
        stress,
        stressor,
        intensity: args.intensity,
        params,
        seed: args.seed,
        policies: Policy::ALL.to_vec(),
        replays: args.replays,
    }
    .check()?;
    let gpu = open_gpu(&args.gpu)?;
    let measured = measure(&gpu.lib, &plan)?;
    let m = measured.pipeline;
    let verdict = judge(&m);
    print_profiles(&m);
    let simulated = simulate_alike(&m, params)?;
    let mut t = Table::new(&[
        "<policy",
        "served/s",
        "p50 ms",
        "p99 ms",
        "SLO",
        "responses",
        "<capture/in effect after, ms",
        "<stages start at",
        "<on elements",
        "sim p99 ms",
        "sim SLO",
    ]);
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for (run, sim) in m.runs.iter().zip(&simulated) {
        let o = &run.outcome;
        let capture: Vec<String> = run
            .responses
            .iter()
            .map(|r| {
                let after = r.applied_ns.map_or("-".into(), |a| format!("{:.1}", (a - r.at_ns) as f64 / 1e6));
                format!("{:.1}/{after}", r.capture_ms)
            })
            .collect();
        t.row(vec![
            o.policy.name().to_string(),
            format!("{:.0}", o.served_rps),
            ms(o.p50_ms),
            ms(o.p99_ms),
            format!("{:.2}%", 100.0 * o.slo_attainment),
            o.responses.to_string(),
            capture.join(" "),
            format!("{:?}", o.starts),
            format!("{:?}", o.elements),
            ms(sim.p99_ms),
            format!("{:.2}%", 100.0 * sim.slo_attainment),
        ]);
    }
    println!(
        "{} b{} at {:.0} requests/s for {} s, SLO {} ms; the {:?} stressor on element {} from {} to {} s",
        m.model,
        m.batch,
        m.runs.first().map_or(0.0, |r| r.rate_rps),
        m.duration_s,
        m.slo_ms,
        m.stressor,
        m.stress.element,
        m.stress.from_s,
        m.stress.to_s
    );
    println!("{}", t.render());
    println!("{verdict}");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_json(&dir.join("measurement.json"), &m)?;
    write_json(&dir.join("simulated.json"), &simulated)?;
    let files = [
        ("batches.csv", batches_csv(&m.runs)),
        ("unstressed.csv", batches_csv(std::slice::from_ref(&m.unstressed))),
        ("verdict.txt", format!("{verdict}\n")),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {}", dir.join(name).display()))?;
    }
    if let Some(e) = measured.stopped {
        return Err(anyhow::Error::new(e).context(format!(
            "the measurement stopped after {} of its runs (kept in {})",
            m.runs.len(),
            dir.display()
        )));
    }
    Ok(if verdict.is_valid() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_profiles(m: &MeasuredPipeline) {
    let spans: Vec<String> = m
        .profiles
        .iter()
        .map(|p| format!("element {} ({} SMs) {:.1} us", p.element, p.granted_sms, p.span_us))
        .collect();
    println!("{} on {}: {} operators; alone: {}", m.model, m.device, m.op_us.len(), spans.join(", "));
    println!(
        "beside the stressor, element {}: {:.1} us ({:.2}x); balanced capacity {:.0} requests/s",
        m.stressed.element, m.stressed.span_us, m.stressed_slowdown, m.capacity_rps
    );
    let u = &m.unstressed.outcome;
    let basis: Vec<String> = m.basis().unwrap_or_default().iter().map(|b| format!("{b:.3}")).collect();
    println!(
        "unstressed, balanced, {} batches before the episode: p99 {} ms, {:.2}% within SLO; elements at [{}]x their solo stage times (the policies' basis)",
        m.unstressed.batches.len(),
        u.p99_ms.map_or("-".into(), |v| format!("{v:.2}")),
        100.0 * u.slo_attainment,
        basis.join(", ")
    );
}

/// The simulator's forecast of each measured run: the measured operator times, the measured
/// slowdown over the stressor's episode, the measured basis as each element's contention, and
/// the median measured time from a response to its layout taking effect.
fn simulate_alike(m: &MeasuredPipeline, params: Params) -> anyhow::Result<Vec<coloc_schedulers::pipeline::Outcome>> {
    let ops = Operators {
        model: m.model.clone(),
        batch: m.batch as u32,
        share: SoloShare::Green { sms: m.profiles[0].granted_sms },
        us: m.op_us.clone(),
    };
    // a response's layout takes effect when its graphs are captured: the measured time to that
    let to_effect_us: Vec<f64> = m
        .runs
        .iter()
        .flat_map(|r| r.responses.iter().filter_map(|x| x.applied_ns.map(|a| (a - x.at_ns) as f64 / 1e3)))
        .collect();
    let switch_us =
        if to_effect_us.is_empty() { params.switch_us } else { coloc_kernels::stats::median_of(&to_effect_us) };
    let basis = m.basis()?;
    let episodes = [Episode {
        element: m.stress.element,
        from_s: m.stress.from_s,
        to_s: m.stress.to_s,
        slowdown: m.stressed_slowdown.max(1e-3),
    }];
    let run = PipelineSpec {
        ops: &ops,
        elements: m.elements,
        duration_s: m.duration_s,
        slo_ms: m.slo_ms,
        episodes: &episodes,
        contention: Some(&basis),
        params: Params { switch_us, ..params },
        seed: m.seed,
    }
    .check()?;
    Ok(m.runs.iter().map(|r| simulate(&run, r.policy, r.rate_rps)).collect::<Result<_, _>>()?)
}
