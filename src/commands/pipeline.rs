//! `coloc pipeline`: ODIN, least-loaded and static scheduling of one pipelined model.

use std::process::ExitCode;

use anyhow::Context;
use coloc_dataset::Dataset;
use coloc_dataset::solo_rows::SoloOpRow;
use coloc_schedulers::pipeline::{Episode, Operators, Params, PipelineSpec, Policy, goodput, simulate};
use coloc_workloads::scenario::SoloShare;

use super::write_json;
use crate::cli::PipelineArgs;
use crate::table::Table;

pub fn run(args: &PipelineArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.measure {
        return super::pipeline_measured::run(args, dir);
    }
    let share = SoloShare::parse(&args.share)
        .with_context(|| format!("--share {}: not a share label (device, green40, mps43, process)", args.share))?;
    let rows: Vec<SoloOpRow> = Dataset::open(&args.profiles)?.load()?;
    let ops = Operators::from_rows(&rows, &args.model, args.batch, share)?;
    let episodes: Vec<Episode> = args.interference.iter().map(|e| e.parse()).collect::<Result<_, _>>()?;
    let params = Params { window: args.window, threshold: args.threshold, switch_us: args.switch_us };
    let run = PipelineSpec {
        ops: &ops,
        elements: args.elements,
        duration_s: args.duration_s,
        slo_ms: args.slo_ms,
        episodes: &episodes,
        contention: None,
        params,
        seed: args.seed,
    }
    .check()?;
    let capacity = run.capacity_rps();
    let rate = args.rate.unwrap_or(capacity / 2.0);
    let balanced = run.balanced();
    println!(
        "{} b{} over {} elements at {}: {} operators, {:.0} us solo; balanced stages {:?} us (first operators {:?}); capacity {:.0} requests/s",
        ops.model,
        ops.batch,
        args.elements,
        share.label(),
        ops.us.len(),
        ops.us.iter().sum::<f64>(),
        balanced.stage_us(&ops.us).iter().map(|t| t.round()).collect::<Vec<_>>(),
        balanced.starts(),
        capacity
    );
    println!(
        "{:.0} requests/s for {} s, SLO {} ms, episodes {:?}",
        rate, args.duration_s, args.slo_ms, args.interference
    );
    let mut headers =
        vec!["<policy", "served/s", "p50 ms", "p99 ms", "SLO", "responses", "<stages start at", "<on elements"];
    if args.goodput {
        headers.push("goodput/s");
    }
    let mut t = Table::new(&headers);
    let mut json = Vec::new();
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for policy in Policy::ALL {
        let o = simulate(&run, policy, rate)?;
        let mut row = vec![
            policy.name().to_string(),
            format!("{:.0}", o.served_rps),
            ms(o.p50_ms),
            ms(o.p99_ms),
            format!("{:.2}%", 100.0 * o.slo_attainment),
            o.responses.to_string(),
            format!("{:?}", o.starts),
            format!("{:?}", o.elements),
        ];
        let held = if args.goodput {
            let g = goodput(&run, policy)?;
            row.push(format!("{g:.0}"));
            Some(g)
        } else {
            None
        };
        t.row(row);
        json.push(serde_json::json!({
            "policy": policy.name(), "served_rps": o.served_rps, "p50_ms": o.p50_ms, "p99_ms": o.p99_ms,
            "slo_attainment": o.slo_attainment, "responses": o.responses, "starts": o.starts,
            "elements": o.elements, "arrived": o.arrived, "completed": o.completed, "goodput_rps": held,
        }));
    }
    println!("{}", t.render());
    println!(
        "simulated from measured solo operator times ({}); each element's slowdown is the median of its last {} services; a response's layout takes effect {} us after it",
        args.profiles.display(),
        args.window,
        args.switch_us
    );
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "model": ops.model, "batch": ops.batch, "share": share.label(), "elements": args.elements,
            "rate_rps": rate, "slo_ms": args.slo_ms, "duration_s": args.duration_s,
            "interference": args.interference, "seed": args.seed, "capacity_rps": capacity, "outcomes": json,
        });
        write_json(path, &doc)?;
    }
    Ok(ExitCode::SUCCESS)
}
