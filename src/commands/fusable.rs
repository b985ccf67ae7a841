//! `coloc models fusable`: which matrix products of two models one grouped launch could run
//! together (`coloc_workloads::fusion`).

use std::path::Path;
use std::process::ExitCode;

use coloc_workloads::fusion::fusable;
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::{BUILTIN, ModelSpec};

use crate::cli::FusableArgs;
use crate::table::Table;

pub fn run(args: &FusableArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<String> =
        if args.models.is_empty() { BUILTIN.iter().map(|(n, _)| n.to_string()).collect() } else { args.models.clone() };
    if names.len() < 2 {
        anyhow::bail!("give at least two models (or none, for every shipped one)");
    }
    let options = BuildOptions { batch: args.batch, ..Default::default() };
    let graphs: Vec<ModelGraph> = names
        .iter()
        .map(|n| {
            let (spec, _) = ModelSpec::resolve(n, Path::new("."))?;
            Ok(ModelGraph::build(&spec, &options)?)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut t =
        Table::new(&["<model A", "<model B", "shared shapes", "products fused A", "B", "of A's FLOPs", "of B's"]);
    let mut details = Vec::new();
    for (i, a) in graphs.iter().enumerate() {
        for b in &graphs[i + 1..] {
            let f = fusable(a, b);
            t.row(vec![
                a.model.clone(),
                b.model.clone(),
                f.shared.len().to_string(),
                format!("{} of {}", f.fused, f.products_a),
                format!("{} of {}", f.fused, f.products_b),
                format!("{:.1}%", 100.0 * f.share_a),
                format!("{:.1}%", 100.0 * f.share_b),
            ]);
            if args.shapes && !f.shared.is_empty() {
                details.push(format!("{} / {}:", a.model, b.model));
                for r in &f.shared {
                    details.push(format!(
                        "  N {} K {} {:?}: {} pairs, M {:?} / M {:?}",
                        r.shape.n, r.shape.k, r.shape.precision, r.pairs, r.m_a, r.m_b
                    ));
                }
            }
        }
    }
    println!(
        "batch {}: products that fuse pairwise in lockstep (same N, K, precision, any M, in graph order; at most what a runtime gets)",
        args.batch
    );
    println!("{}", t.render());
    details.iter().for_each(|d| println!("{d}"));
    Ok(ExitCode::SUCCESS)
}
