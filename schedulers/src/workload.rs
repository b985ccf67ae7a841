//! A serving workload, as a user writes it: the models to serve, each with its request rate and
//! latency objective, the GPUs to serve them on and the batch sizes and mechanism a planner may
//! use. Checked once into a [`Workload`]; planners take only that.
//!
//! ```toml
//! name = "mixed"
//! gpus = 1
//! mechanism = "mps"          # the spatial mechanism of space sharing: mps or green
//! batches = [1, 4, 8, 16]    # the batch sizes a planner may choose (each needs solo profiles)
//! duration_s = 4.0           # measured window of each run, after warmup_s
//! warmup_s = 0.5
//! seed = 11                  # arrivals: the same for every policy and rate (common random numbers)
//!
//! [[model]]
//! model = "resnet50"
//! rate = 3000.0              # requests per second at scale 1
//! slo_ms = 8.0               # arrival to completion
//! ```

use std::path::{Path, PathBuf};

use coloc_workloads::scenario::PartitionKind;
use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "one")]
    gpus: usize,
    mechanism: Mechanism,
    batches: Vec<usize>,
    duration_s: f64,
    #[serde(default = "default_warmup")]
    warmup_s: f64,
    seed: u64,
    #[serde(rename = "model")]
    models: Vec<ServedFile>,
}

fn one() -> usize {
    1
}

fn default_warmup() -> f64 {
    0.5
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServedFile {
    model: String,
    name: Option<String>,
    rate: f64,
    slo_ms: f64,
}

/// The mechanism that gives tenants a share of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// MPS active-thread percentages (gpulet's and iGniter's mechanism).
    Mps,
    /// Green contexts of whole SM groups.
    Green,
}

impl Mechanism {
    pub fn partition(self) -> PartitionKind {
        match self {
            Mechanism::Mps => PartitionKind::Mps,
            Mechanism::Green => PartitionKind::Green,
        }
    }
}

/// One model to serve.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    /// Unique in the workload: the tenant's name in the scenarios a plan becomes.
    pub name: String,
    pub model: String,
    /// Requests per second at scale 1.
    pub rate: f64,
    pub slo_ms: f64,
}

/// A checked workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub name: String,
    pub description: String,
    pub gpus: usize,
    pub mechanism: Mechanism,
    /// Ascending, distinct.
    pub batches: Vec<usize>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub seed: u64,
    pub models: Vec<Served>,
    /// The file's directory: model files are found relative to it.
    pub base_dir: PathBuf,
}

impl Workload {
    pub fn load(path: &Path) -> Result<Workload> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid(path.display().to_string(), format!("cannot read: {e}")))?;
        Workload::parse(&text, path)
    }

    /// Parses and checks `text`, read from `path` (named in every error).
    pub fn parse(text: &str, path: &Path) -> Result<Workload> {
        let file: WorkloadFile = toml::from_str(text).map_err(|e| coloc_workloads::error::from_toml(path, text, &e))?;
        let at = |field: &str| format!("{}: {field}", path.display());
        if file.gpus == 0 {
            return Err(Error::invalid(at("gpus"), "must be at least 1"));
        }
        let mut batches = file.batches.clone();
        batches.sort_unstable();
        batches.dedup();
        if batches.is_empty() || batches[0] == 0 {
            return Err(Error::invalid(at("batches"), "give one or more batch sizes, each at least 1"));
        }
        if !(file.duration_s > 0.0 && file.warmup_s >= 0.0) {
            return Err(Error::invalid(at("duration_s"), "must be positive (and warmup_s not negative)"));
        }
        if file.models.is_empty() {
            return Err(Error::invalid(at("model"), "no [[model]] to serve"));
        }
        let mut models: Vec<Served> = Vec::new();
        for (i, m) in file.models.iter().enumerate() {
            let name = m.name.clone().unwrap_or_else(|| m.model.clone());
            let field = |f: &str| at(&format!("model {} ({name}): {f}", i + 1));
            if !(m.rate.is_finite() && m.rate > 0.0) {
                return Err(Error::invalid(field("rate"), format!("{} is not a positive request rate", m.rate)));
            }
            if !(m.slo_ms.is_finite() && m.slo_ms > 0.0) {
                return Err(Error::invalid(field("slo_ms"), format!("{} is not a positive latency", m.slo_ms)));
            }
            if models.iter().any(|o| o.name == name) {
                return Err(Error::invalid(field("name"), "two models of the workload have this name: name them"));
            }
            models.push(Served { name, model: m.model.clone(), rate: m.rate, slo_ms: m.slo_ms });
        }
        Ok(Workload {
            name: file.name,
            description: file.description,
            gpus: file.gpus,
            mechanism: file.mechanism,
            batches,
            duration_s: file.duration_s,
            warmup_s: file.warmup_s,
            seed: file.seed,
            models,
            base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        })
    }

    /// Requests per second of every model together at scale 1.
    pub fn total_rate(&self) -> f64 {
        self.models.iter().map(|m| m.rate).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "w"
mechanism = "mps"
batches = [8, 1, 8]
duration_s = 2.0
seed = 3
[[model]]
model = "resnet50"
rate = 100.0
slo_ms = 5.0
[[model]]
model = "bert_base"
rate = 50.0
slo_ms = 9.0
"#;

    #[test]
    fn a_workload_is_checked_into_sorted_batches_and_named_models() {
        let w = Workload::parse(GOOD, Path::new("w.toml")).unwrap();
        assert_eq!(w.batches, vec![1, 8]);
        assert_eq!(w.gpus, 1);
        assert_eq!(w.models[1].name, "bert_base");
        assert_eq!(w.total_rate(), 150.0);
    }

    #[test]
    fn bad_input_is_named_by_file_and_field() {
        let bad_rate = GOOD.replace("rate = 50.0", "rate = -1.0");
        let e = Workload::parse(&bad_rate, Path::new("w.toml")).unwrap_err().to_string();
        assert!(e.contains("w.toml") && e.contains("model 2 (bert_base): rate"), "{e}");
        let twice = GOOD.replace("bert_base", "resnet50");
        let e = Workload::parse(&twice, Path::new("w.toml")).unwrap_err().to_string();
        assert!(e.contains("two models"), "{e}");
        let typo = GOOD.replace("slo_ms = 5.0", "slo = 5.0");
        let e = Workload::parse(&typo, Path::new("w.toml")).unwrap_err().to_string();
        assert!(e.contains("w.toml:10:") && e.contains("unknown field `slo`"), "{e}");
        let no_batch = GOOD.replace("batches = [8, 1, 8]", "batches = []");
        assert!(Workload::parse(&no_batch, Path::new("w.toml")).unwrap_err().to_string().contains("batches"));
    }
}
