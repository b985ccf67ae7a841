//! Command-line options, typed.

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "coloc",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("COLOC_GIT_COMMIT"), ")"),
    about = "Measure GPU interference between co-located ML-inference workloads"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Describe the GPU: identity, partition mechanisms, timer resolution, measured ceilings.
    Devices(DevicesArgs),
    /// The kernel library: list, check against CPU references, benchmark.
    #[command(subcommand)]
    Kernels(KernelsCommand),
    /// Partition mechanisms: how much of the GPU each one really grants.
    #[command(subcommand)]
    Partitions(PartitionsCommand),
    /// Model graphs: list, show their operators and totals, run them on the GPU.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Suites of co-location scenarios: validate and expand (no GPU needed).
    #[command(subcommand)]
    Suite(SuiteCommand),
    /// Measure a suite on the GPU: solo profiles, then every scenario; Parquet tables, a
    /// manifest and a VALID/INVALID summary in --out.
    Measure(MeasureArgs),
    /// Read a measured dataset back.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Fit the interference predictors on a measured dataset and score them on held-out
    /// batches: a leaderboard (no GPU needed).
    Evaluate(EvaluateArgs),
    /// Fit one predictor on every batch of a dataset (runs with aggressors left out) and save
    /// it as JSON, with the SHA-256 of the dataset's manifest (no GPU needed).
    Fit(FitArgs),
    /// Forecast a suite before it runs: every tenant's p50/p99 latency and SLO attainment,
    /// simulated with a fitted predictor; with --against, beside what was measured (no GPU
    /// needed).
    Predict(PredictArgs),
    /// Plan a serving workload with one policy: where each model runs, on what share, at what
    /// batch size; simulate the plan, write it as a suite, or measure it on the GPU.
    Schedule(ScheduleArgs),
    /// Every placement policy on one serving workload: goodput at the SLO in the simulator, as
    /// a multiple of time-sharing's, the regret of each predictor's plans; with --measured, the
    /// same plans measured for real (no GPU needed).
    CompareSchedulers(CompareSchedulersArgs),
    /// ODIN against least-loaded and static scheduling (and an oracle) of one model split into
    /// pipeline stages over equal SM partitions, one of them slowed for a while: latency, SLO
    /// attainment and goodput of each, simulated from the model's measured solo operator times
    /// (no GPU needed).
    Pipeline(PipelineArgs),
    /// Internal: one MPS client of a measured run (job on stdin).
    #[command(name = "__run-worker", hide = true)]
    RunWorker,
    /// Internal: one model's operators under ncu (`measure --ncu`).
    #[command(name = "__ncu-solo", hide = true)]
    NcuSolo { model: String, batch: usize },
    /// Internal: run one probe job read from stdin (an MPS client process).
    #[command(name = "__probe-worker", hide = true)]
    ProbeWorker,
}

#[derive(Args, Debug)]
pub struct GpuArgs {
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
}

#[derive(Args, Debug)]
pub struct DevicesArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Skip measuring the ceilings (copy bandwidth, FMA and matrix rates).
    #[arg(long)]
    pub no_ceilings: bool,
    /// Fewer sizes and repetitions for the ceilings.
    #[arg(long)]
    pub quick: bool,
    /// Skip the MPS trial (starting a private daemon and one client).
    #[arg(long)]
    pub no_mps_trial: bool,
    /// Also write the inventory as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KernelsCommand {
    /// List kernels and the check and bench shapes with their analytic cost (no GPU needed).
    List,
    /// Check every operator on the GPU against its CPU reference on fresh random inputs.
    Check(CheckArgs),
    /// Benchmark every operator solo: time, spread, achieved rates, fraction of ceilings.
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Seed of the random inputs (default: a fresh one, printed so a failure can be replayed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Only operators whose label contains one of these (case-insensitive).
    #[arg(long)]
    pub only: Vec<String>,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Only shapes whose label contains one of these (case-insensitive).
    #[arg(long)]
    pub only: Vec<String>,
    /// Samples per shape.
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    /// Time budget per shape, seconds (at least 10 samples are always taken).
    #[arg(long, default_value_t = 3.0)]
    pub max_seconds: f64,
    /// Keep the L2 warm between samples instead of flushing it.
    #[arg(long)]
    pub warm_l2: bool,
    /// Skip the instrumentation- and launch-overhead experiments.
    #[arg(long)]
    pub skip_overhead: bool,
    /// Fewer repetitions when measuring the ceilings.
    #[arg(long)]
    pub quick: bool,
    /// Print the performance targets without judging them (the exit status ignores them):
    /// for runs under a profiler such as ncu, which serialises and slows every kernel.
    #[arg(long)]
    pub no_targets: bool,
    /// Directory for bench.json and samples.csv.
    #[arg(long, default_value = "runs/bench")]
    pub out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum PartitionsCommand {
    /// Time fixed compute-bound work on the whole GPU, in green contexts and in MPS clients.
    Scaling(ScalingArgs),
    /// Latency of a short kernel behind a long one, at equal and at higher stream priority.
    Priority(PriorityArgs),
    /// Space-time's super-kernel: K tenants' same-shape GEMMs one after another, each on a
    /// stream of its own, and as one batched launch; outputs checked, times against the host.
    Fusion(FusionArgs),
}

#[derive(Args, Debug)]
pub struct FusionArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// GEMM shapes MxNxK (A m x k times a weight stored n x k, as a linear layer keeps it),
    /// repeatable; several joined by commas alternate over the tenants and fuse as one grouped
    /// launch. The defaults: the paper's 256^3; bert_base's feed-forward at batch 1, sequence
    /// 128; and it alternating with vit_b16's (197 rows).
    #[arg(long, default_values_t = [
        "256x256x256".to_string(),
        "128x3072x768".to_string(),
        "128x3072x768,197x3072x768".to_string(),
    ])]
    pub gemm: Vec<String>,
    /// f32, tf32 or bf16.
    #[arg(long, default_value = "bf16")]
    pub precision: String,
    /// Tenant counts.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4, 8, 16, 32])]
    pub tenants: Vec<usize>,
    /// Timed rounds per method and count.
    #[arg(long, default_value_t = 50)]
    pub reps: usize,
    /// Also write the reports as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PriorityArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// Also write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ScalingArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Green-context sizes, in SMs (rounded up to the chip's group size).
    #[arg(long, value_delimiter = ',', default_values_t = [8u32, 16, 32, 48, 64, 96, 120])]
    pub green: Vec<u32>,
    /// MPS active-thread percentages.
    #[arg(long, value_delimiter = ',', default_values_t = [12u32, 25, 50, 75, 100])]
    pub mps: Vec<u32>,
    /// Timed repetitions per row.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Also write the table as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// The shipped models with their totals at batch 1 (no GPU needed).
    List,
    /// Per-operator kernels, FLOPs, parameters and memory of one model at a batch size.
    Show(ShowArgs),
    /// Run models on the GPU once per batch size and time them (graph replay and eager).
    Run(RunModelsArgs),
    /// Time each (model, batch) of a PyTorch reference (`ci/torch_reference.py`'s JSON) with
    /// coloc's graphs and print coloc / PyTorch.
    Compare(CompareModelsArgs),
    /// Set pairs of PyTorch processes under MPS (`ci/torch_pairs.py`'s JSON) beside the same
    /// pairs measured by coloc (`coloc measure suites/torch-pairs.toml`): each model's slowdown
    /// against running alone (no GPU needed).
    ComparePairs(ComparePairsArgs),
    /// Which matrix products of two models one grouped launch could run together (space-time's
    /// super-kernel: same N, K and precision), for every pair of the models given (no GPU needed).
    Fusable(FusableArgs),
}

#[derive(Args, Debug)]
pub struct FusableArgs {
    /// Models (default: every shipped one).
    pub models: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Also list the shared shapes of each pair.
    #[arg(long)]
    pub shapes: bool,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// A dataset written by `coloc measure`.
    pub dataset: PathBuf,
    /// Seed of the random split.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Only these splits (default: every one).
    #[arg(long, value_enum)]
    pub split: Vec<SplitArg>,
    /// Also write the leaderboard as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write leaderboard.json, leaderboard.csv and every prediction (predictions.parquet) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Solo hardware counters: a dataset measured with --ncu (as data/h200-counters); gpulet's
    /// and iGniter's models run too. Repeat it for counters spread over several datasets.
    #[arg(long)]
    pub counters: Vec<PathBuf>,
    /// Train on this dataset and test on DATASET (one split: every predictor fitted on all of
    /// this one's batches, scored on all of DATASET's).
    #[arg(long, conflicts_with = "split")]
    pub train: Option<PathBuf>,
    /// Leave out the Abacus-style MLP, the gradient-boosted trees and the per-kernel models (the
    /// slowest).
    #[arg(long)]
    pub quick: bool,
    /// Only every K-th run of the dataset (with every run that has aggressors and every
    /// repetition of a repeated scenario): every predictor on every split, in a fraction of the
    /// time (a check, not the leaderboard).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub slice: Option<u32>,
}

#[derive(Args, Debug)]
pub struct FitArgs {
    /// A dataset written by `coloc measure`.
    pub dataset: PathBuf,
    /// Which predictor.
    #[arg(long, value_parser = predictor_kind())]
    pub predictor: coloc_predictors::saved::Kind,
    /// Where to save it (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Solo hardware counters, for gpulet's models (as for `evaluate`; may be repeated).
    #[arg(long)]
    pub counters: Vec<PathBuf>,
    /// Further measured datasets to train on with DATASET (may be repeated); the per-kernel
    /// models take their solo kernel timelines from DATASET.
    #[arg(long)]
    pub with: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The suite to forecast (TOML).
    pub suite: PathBuf,
    /// A predictor saved by `coloc fit`.
    #[arg(long)]
    pub predictor: PathBuf,
    /// A measured dataset whose solo profiles (and harness overheads) the forecast starts from;
    /// it must hold every (model, batch, share) the suite runs. Default: the --against dataset.
    #[arg(long)]
    pub profiles: Option<PathBuf>,
    /// A dataset measured from this suite: its figures are shown beside the forecast.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Write forecast.json and forecast.csv here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only scenarios whose name contains one of these (case-insensitive), as for `measure`.
    #[arg(long)]
    pub only: Vec<String>,
    /// Measured datasets with one-stream runs of several models: how much slower a one-stream
    /// batch runs right after another model's batch, per (model, batch), for the simulator
    /// (default: the switch profile measured beside the solo profiles, where the dataset has
    /// one; else not at all). Given, these replace the profile's factors altogether
    /// (`docs/schedulers.md`).
    #[arg(long)]
    pub switch_from: Vec<PathBuf>,
}

/// What every scheduling command reads.
#[derive(Args, Debug)]
pub struct ServingArgs {
    /// The serving workload (TOML, e.g. serving/mixed.toml).
    pub workload: PathBuf,
    /// A measured dataset holding solo profiles of every model of the workload at every batch
    /// size and share a planner may choose (e.g. data/h200-serve-profiles).
    #[arg(long)]
    pub profiles: PathBuf,
    /// The predictor the simulator times batches with (saved by `coloc fit`).
    #[arg(long)]
    pub truth: PathBuf,
    /// Measured datasets with one-stream runs of several models: how much slower a one-stream
    /// batch runs right after another model's batch, per (model, batch), for the simulator
    /// (default: the switch profile measured beside the solo profiles, where the dataset has
    /// one; else not at all). Given, these replace the profile's factors altogether
    /// (`docs/schedulers.md`).
    #[arg(long)]
    pub switch_from: Vec<PathBuf>,
}

/// A placement policy of `coloc schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyArg {
    TimeSharing,
    SpaceOnly,
    Proportional,
    Gpulet,
    /// gpulet with an interference model: --predictor (gpulet's linear model, as published).
    GpuletInt,
    /// The greedy search over measured shares with --predictor (iGniter's search when it is
    /// iGniter's model).
    Greedy,
    /// Clockwork's runtime scheduler on one stream (the harness runs it).
    Clockwork,
    /// Streams of the whole GPU, batches first come first served (the harness's own loops).
    Fcfs,
    /// Abacus: streams of the whole GPU, least headroom first, batches held back where
    /// --predictor expects a miss (the harness runs it, asking the same file).
    Abacus,
    /// Dynamic space-time sharing: streams of the whole GPU, stragglers evicted to run alone
    /// while the load lasts, learnt from measured batches (the harness runs it).
    SpaceTime,
}

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub serving: ServingArgs,
    #[arg(long, value_enum)]
    pub policy: PolicyArg,
    /// The predictor a policy plans or schedules with (gpulet-int, greedy, abacus).
    #[arg(long)]
    pub predictor: Option<PathBuf>,
    /// Plan for the workload's rates times this.
    #[arg(long, default_value_t = 1.0, conflicts_with = "goodput")]
    pub scale: f64,
    /// Plan at the policy's goodput (the highest scale whose simulated plan keeps every tenant
    /// at 99% within its SLO).
    #[arg(long)]
    pub goodput: bool,
    /// Simulate the plan with --truth and print each tenant's latency and SLO attainment.
    #[arg(long)]
    pub simulate: bool,
    /// Write the plan as a suite `coloc measure` runs.
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Measure the plan on the GPU into this directory (the plan's suite, then its dataset in
    /// OUT/dataset, with the simulator's forecast beside it).
    #[arg(long)]
    pub measure: Option<PathBuf>,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

#[derive(Args, Debug)]
pub struct CompareSchedulersArgs {
    #[command(flatten)]
    pub serving: ServingArgs,
    /// Predictors to plan with (saved by `coloc fit`): each drives the greedy search; a gpulet
    /// model also drives gpulet with interference. --truth drives it too, as the oracle the
    /// others' regret is measured against.
    #[arg(long)]
    pub predictor: Vec<PathBuf>,
    /// A dataset measured from a plans suite this command wrote (OUT/plans.toml): each plan's
    /// measured SLO attainment and the goodput the GPU allowed (may be repeated).
    #[arg(long)]
    pub measured: Vec<PathBuf>,
    /// The multiples of each policy's simulated goodput its plans are written at, to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [0.9, 1.0, 1.1])]
    pub measure_at: Vec<f64>,
    /// Write comparison.json, comparison.csv and plans.toml (every policy's plan at each
    /// --measure-at multiple of its goodput) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The predictors `coloc fit` can fit, by their keys.
fn predictor_kind() -> impl clap::builder::TypedValueParser<Value = coloc_predictors::saved::Kind> {
    use coloc_predictors::saved::Kind;
    clap::builder::PossibleValuesParser::new(Kind::ALL.map(Kind::key))
        .map(|key| Kind::from_key(&key).expect("a possible value is a key"))
}

/// A split of `coloc evaluate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    Random,
    LeaveOneModelOut,
    LeaveOneMixOut,
    PairsToTriples,
    GreenToMps,
    MpsToGreen,
    LowToHighLoad,
    Prequential,
    Aggressors,
}

#[derive(Args, Debug)]
pub struct ComparePairsArgs {
    /// The JSON that ci/torch_pairs.py wrote.
    pub file: PathBuf,
    /// The dataset `coloc measure` wrote for the same pairs.
    pub dataset: PathBuf,
    /// Differences in slowdown above this fraction are flagged for explaining.
    #[arg(long, default_value_t = 0.15)]
    pub flag: f64,
    /// Also write the comparison as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompareModelsArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// The JSON that ci/torch_reference.py wrote.
    pub file: PathBuf,
    /// Timed replays per model and batch.
    #[arg(long, default_value_t = 50)]
    pub reps: usize,
    /// The ratio a model must stay within.
    #[arg(long, default_value_t = 1.2)]
    pub target: f64,
    /// Also write the comparison as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ShapeArgs {
    /// Sequence length (token models).
    #[arg(long)]
    pub seq: Option<usize>,
    /// Tokens already in the KV cache (decode models).
    #[arg(long)]
    pub context: Option<usize>,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A shipped model's name, or a model file's path.
    pub model: String,
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    #[command(flatten)]
    pub shape: ShapeArgs,
}

#[derive(Args, Debug)]
pub struct RunModelsArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Shipped model names or model file paths (default: every shipped model).
    pub models: Vec<String>,
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8])]
    pub batch: Vec<usize>,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Timed replays per model and batch.
    #[arg(long, default_value_t = 50)]
    pub reps: usize,
    /// Also print where the time goes: operator kinds by their median stamp time.
    #[arg(long)]
    pub ops: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Before timing, do these in this process, in order, as `coloc measure` does before its
    /// solo profiles: to find what changes the time of the library kernels of a long-lived
    /// process (docs/h200.md, "The reference's two speeds").
    #[arg(long, value_enum, value_delimiter = ',')]
    pub first: Vec<FirstStep>,
}

/// Work `coloc models run --first` does in its process before timing.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstStep {
    /// Split the SMs into green-context groups and create one green context (the support probe).
    GreenContext,
    /// Measure the device's ceilings (large cuBLAS GEMMs, copies, L2 sweeps).
    Ceilings,
    /// Only the ceilings' copies (two 2 GiB buffers).
    CeilingsCopies,
    /// Only the ceilings' FMA stressor.
    CeilingsFma,
    /// Only the ceilings' wgmma probes.
    CeilingsTensorProbes,
    /// Only the ceilings' cuBLAS GEMMs (bf16 4096-12288, tf32 and f32 8192).
    CeilingsGemms,
    /// Only the ceilings' L2 sweeps.
    CeilingsL2,
    /// Open NVML, read its settings and a sample, and the MIG state (the manifest's start).
    Nvml,
    /// Read the NVRTC, cuBLAS and cuDNN versions (the manifest's libraries).
    Libraries,
    /// Only create a stream's cuBLAS, cuBLASLt and cuDNN handles, as every ceilings part does
    /// first (the control for those parts).
    Handles,
    /// Read the device's limits for suites (SM groups of green contexts), `measure`'s first call.
    Limits,
    /// Measure the harness overhead (null workload through the serving loop, clock check).
    Overhead,
    /// Calibrate the host/GPU clock map once.
    Calibrate,
    /// Profile every model and batch of the run on the whole GPU, as `coloc measure`'s solo
    /// profiles do, and print their times (the same process then times them again).
    Profile,
}

#[derive(Args, Debug)]
pub struct PipelineArgs {
    /// The model (its operators' solo times are read from --profiles).
    pub model: String,
    /// A measured dataset holding the model's solo operators at --share.
    #[arg(long, default_value = "data/h200-forecast")]
    pub profiles: PathBuf,
    #[arg(long, default_value_t = 8)]
    pub batch: u32,
    /// Each processing element's share, as solo profiles name it (e.g. green40, mps43).
    #[arg(long, default_value = "green40")]
    pub share: String,
    /// Processing elements, one stage each to start with.
    #[arg(long, default_value_t = 3)]
    pub elements: usize,
    /// Requests per second (batches of --batch arrive as a Poisson process); default: half the
    /// balanced pipeline's capacity.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Latency objective of a batch, from its arrival to its last stage's end.
    #[arg(long, default_value_t = 5.0)]
    pub slo_ms: f64,
    #[arg(long, default_value_t = 8.0)]
    pub duration_s: f64,
    /// ELEMENT:FROM-TO:SLOWDOWN, repeatable. The default, 2.09x on element 1 from 2 to 6 s, is
    /// the median slowdown measured of resnet50 b8 beside a co-runner on the same SMs
    /// (streams runs of data/h200-train).
    #[arg(long, default_values_t = ["1:2-6:2.09".to_string()])]
    pub interference: Vec<String>,
    /// Services of an element between two estimates of its slowdown.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Relative change of an element's estimated slowdown that calls for a response.
    #[arg(long, default_value_t = 0.10)]
    pub threshold: f64,
    /// How long after a response its layout takes effect (its stage graphs captured meanwhile,
    /// batches flowing through the layout before), microseconds.
    #[arg(long, default_value_t = 2000.0)]
    pub switch_us: f64,
    /// Also search each policy's goodput: the highest rate holding 99% within the SLO.
    #[arg(long)]
    pub goodput: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the outcomes as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Measure on the GPU instead of reading --profiles: each element a green context of --sms
    /// SMs, the stages CUDA graphs on them, the stressor of --stress switched on in one
    /// element, every policy on the same arrivals; the same pipeline is simulated from the
    /// measured profiles beside it. Writes measurement.json, simulated.json, batches.csv, unstressed.csv and verdict.txt to
    /// this directory.
    #[arg(long)]
    pub measure: Option<PathBuf>,
    /// With --measure: SMs of each element.
    #[arg(long, default_value_t = 40)]
    pub sms: u32,
    /// With --measure: ELEMENT:FROM-TO, the stressor's episode, seconds of the window.
    #[arg(long, default_value = "1:2-4")]
    pub stress: String,
    /// With --measure: the stressor (fma, stream, l2, smem, chase), in the element's green
    /// context on a stream of its own.
    #[arg(long, default_value = "fma")]
    pub stressor: String,
    /// With --measure: of a full-device stressor grid.
    #[arg(long, default_value_t = 1.0)]
    pub intensity: f64,
    /// With --measure and no --rate: the rate as a share of the measured capacity.
    #[arg(long, default_value_t = 0.5)]
    pub load: f64,
    /// With --measure: solo replays per element for the operator profiles.
    #[arg(long, default_value_t = 50)]
    pub replays: usize,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

#[derive(Subcommand, Debug)]
pub enum SuiteCommand {
    /// Parse, expand and check every scenario of a suite file.
    Validate(SuiteArgs),
    /// Print the scenarios of a suite file, one line each, with the count.
    Expand(SuiteArgs),
}

#[derive(Args, Debug)]
pub struct SuiteArgs {
    /// The suite file.
    pub file: PathBuf,
    /// Device the shares are checked against: `h200` (the lent card, no GPU needed) or
    /// `current` (read from GPU 0).
    #[arg(long, default_value = "h200")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct MeasureArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// The suite file (e.g. suites/smoke.toml).
    pub suite: PathBuf,
    /// Directory for the dataset (must not hold a run unless --resume).
    #[arg(long, default_value = "runs/measure")]
    pub out: PathBuf,
    /// Continue a run in --out: finished runs are kept and skipped.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: measure the runs that FAILED again.
    #[arg(long, requires = "resume")]
    pub retry_failed: bool,
    /// Only scenarios whose name contains one of these (case-insensitive).
    #[arg(long)]
    pub only: Vec<String>,
    /// Also collect hardware counters of every solo kernel with ncu (Nsight Compute).
    #[arg(long)]
    pub ncu: bool,
    /// A predictor saved by `coloc fit`: once the suite is measured, its forecast of every
    /// tenant (simulated from this measurement's own solo profiles) beside what was measured,
    /// as `coloc predict --against` prints it, also written to OUT/forecast/.
    #[arg(long)]
    pub predictor: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Per run: how long kernels of different tenants ran at the same time, the kernels that
    /// overlapped most, and each tenant's kernel slowdown against solo.
    Overlap(OverlapArgs),
    /// Is the dataset whole, and does every figure fit what the device and the clocks allow?
    /// Every run once, request times adding up, nothing faster than the measured ceilings,
    /// every kernel launch present, nothing noticed before it happened, fresh arrivals in
    /// every run, solo profiles at every share, no VALID run with a growing queue. Exits
    /// non-zero if one fails (a slim copy's skipped invariants are shown as skipped).
    Check(DatasetCheckArgs),
    /// coloc's solo launch times against Nsight Compute's durations of the same kernels (a
    /// dataset measured with --ncu).
    Timing(DatasetCheckArgs),
    /// Print the summary of a dataset (what `summary.txt` holds), computed from its tables.
    Summary(DatasetCheckArgs),
    /// Copy a finished dataset without its per-event tables (every request, every sampled
    /// launch) for committing where space is short; its manifest names what it lacks, and
    /// `dataset check` skips, and says so, the invariants that need them.
    Slim(DatasetSlimArgs),
}

#[derive(Args, Debug)]
pub struct DatasetCheckArgs {
    /// A directory written by `coloc measure`.
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct DatasetSlimArgs {
    /// A finished dataset written by `coloc measure`.
    pub dir: PathBuf,
    /// The new directory of the slim copy (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct OverlapArgs {
    /// A directory written by `coloc measure`.
    pub dir: PathBuf,
    /// Only runs whose key contains one of these (case-insensitive).
    #[arg(long)]
    pub only: Vec<String>,
    /// Overlapping kernel pairs to show per tenant pair.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
}
