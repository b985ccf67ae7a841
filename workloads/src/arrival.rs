//! Arrival processes: when the requests of one tenant are issued.
//!
//! Every schedule is built in full, from a seed, before any timing starts: drawing random numbers
//! or reading a trace then never competes with the measured work, and the same arguments always
//! give the same schedule, so a run can be repeated exactly.
//!
//! Open processes (Poisson, uniform, gamma, on/off, traces) give arrival times. A closed loop
//! cannot: its arrivals depend on when earlier requests complete, so only its think times are
//! drawn in advance.

use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, Gamma};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, nearest};

/// Largest number of entries (arrivals, or think times over all clients) a schedule may hold:
/// 20 million `u64` are 160 MB, beyond which a parameter is almost surely wrong.
pub const MAX_SCHEDULE_LEN: usize = 20_000_000;

/// Largest number of think times drawn for one closed-loop client. A client whose think times
/// would need more to cover the run (a think time of microseconds) reuses its list cyclically,
/// see [`Schedule::think_time_ns`].
pub const MAX_THINK_TIMES_PER_CLIENT: usize = 1_000_000;

/// Minutes in one day of the Azure Functions trace: the number of count columns per row.
pub const AZURE_MINUTES: usize = 1440;

/// Shortest prefix of a function hash that may select an Azure function.
pub const MIN_HASH_PREFIX: usize = 6;

/// The four leading columns of an Azure per-minute invocation file, before the minute columns.
const AZURE_ID_COLUMNS: [&str; 4] = ["HashOwner", "HashApp", "HashFunction", "Trigger"];

/// How requests of one tenant arrive. Read from TOML as an inline table tagged by `kind`, e.g.
/// `arrival = { kind = "poisson", rate = 200.0 }`. Unknown fields are rejected (serde honours
/// `deny_unknown_fields` on internally tagged enums, and [`TraceSpec`] denies its own).
///
/// Open processes start at time 0 with no request in flight: the first arrival comes one
/// inter-arrival time after 0 (traces: the first recorded arrival is at 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ArrivalProcess {
    /// Exponential inter-arrival times with mean 1/rate; `rate` in requests per second.
    Poisson { rate: f64 },
    /// Inter-arrival times uniform on [(1-spread)/rate, (1+spread)/rate]. `spread` is in [0, 1]
    /// (default 1.0); spread 0 is a constant rate, one request every 1/rate seconds.
    Uniform {
        rate: f64,
        #[serde(default = "default_spread")]
        spread: f64,
    },
    /// Gamma-distributed inter-arrival times with mean 1/rate and coefficient of variation `cv`
    /// (> 0): shape 1/cv², scale cv²/rate. cv < 1 is smoother than Poisson, cv > 1 burstier.
    Gamma { rate: f64, cv: f64 },
    /// Bursts: Poisson at `rate_on` for `on_s` seconds, then Poisson at `rate_off` (default 0) for
    /// `off_s` seconds, repeating, starting with an on period at time 0.
    OnOff {
        rate_on: f64,
        on_s: f64,
        off_s: f64,
        #[serde(default)]
        rate_off: f64,
    },
    /// Closed loop: `clients` clients, each sending a request, waiting for its completion,
    /// thinking, then sending the next. Think times have mean `think_ms` and distribution
    /// `think` ("exponential", the default, or "fixed"). Only think times are precomputed.
    ClosedLoop {
        clients: usize,
        think_ms: f64,
        #[serde(default)]
        think: ThinkTime,
    },
    /// Replay of a trace file, see [`TraceSpec`].
    Trace(TraceSpec),
}

/// Distribution of a closed-loop client's think times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkTime {
    /// Exponential with mean `think_ms`.
    #[default]
    Exponential,
    /// Always exactly `think_ms`.
    Fixed,
}

/// File format of a replayed trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// One arrival time per line (or a `timestamp`/`time` column of a CSV), see [`load_timestamps`].
    Timestamps,
    /// Per-minute invocation counts of the Azure Functions 2019 dataset, see [`load_azure`].
    AzureFunctions,
}

/// Unit of the values of a `timestamps` trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    /// Seconds.
    #[default]
    #[serde(rename = "s")]
    S,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Ms,
}

impl TimeUnit {
    /// Seconds per unit.
    pub fn seconds(self) -> f64 {
        match self {
            TimeUnit::S => 1.0,
            TimeUnit::Ms => 1e-3,
        }
    }
}

/// A trace to replay.
///
/// `timestamps`: the recorded arrival times, shifted so that the first is at 0, replayed once.
/// When the trace ends before `duration_s` (or before `min_queries` arrivals) the schedule simply
/// ends there; it is never looped, and the harness judges whether the run has enough queries.
///
/// `azure_functions`: one function's per-minute counts, replayed from `start_minute` and wrapping
/// around the end of the day, each trace minute lasting `minute_s` seconds of experiment, with a
/// Poisson process inside each minute. Without `target_rate`, minute m brings count_m arrivals
/// in expectation, spread over its `minute_s` seconds (rate count_m / minute_s), so minute_s = 60
/// is real time and minute_s = 1 replays a day in 24 minutes at 60 times the rate. With
/// `target_rate`, every minute's rate is multiplied by one factor so that the expected number of
/// arrivals in [0, duration_s) is target_rate × duration_s: the shape across minutes is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// The trace file; a relative path is relative to the directory of the file that names it.
    pub path: PathBuf,
    /// `timestamps` or `azure_functions`.
    pub format: TraceFormat,
    /// Scale to this mean rate in requests/s. Timestamps: all times are multiplied by one factor
    /// so that the mean inter-arrival time over the whole trace is 1/target_rate. Azure: all
    /// per-minute rates are multiplied by one factor so that the mean rate over [0, duration_s)
    /// is target_rate (over one day of the trace when duration_s is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Timestamps: unit of the values, "s" (default) or "ms".
    #[serde(default)]
    pub unit: TimeUnit,
    /// Azure: the function to replay, by its HashFunction; a unique prefix of at least
    /// [`MIN_HASH_PREFIX`] characters is enough. Default: the function with the most invocations
    /// in the file (the first such row on a tie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Azure: seconds of experiment per trace minute (default 60).
    #[serde(default = "default_minute_s")]
    pub minute_s: f64,
    /// Azure: first minute (0-based) of the day to replay (default 0).
    #[serde(default)]
    pub start_minute: usize,
}

fn default_spread() -> f64 {
    1.0
}

fn default_minute_s() -> f64 {
    60.0
}

impl TraceSpec {
    /// A spec with every optional field at its default.
    pub fn new(path: impl Into<PathBuf>, format: TraceFormat) -> Self {
        TraceSpec {
            path: path.into(),
            format,
            target_rate: None,
            unit: TimeUnit::S,
            function: None,
            minute_s: default_minute_s(),
            start_minute: 0,
        }
    }

    /// The trace file, with a relative `path` taken relative to `base_dir`.
    pub fn resolve(&self, base_dir: &Path) -> PathBuf {
        base_dir.join(&self.path)
    }

    fn validate(&self, context: &str) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            return Err(Error::invalid(context, "trace path is empty"));
        }
        if let Some(rate) = self.target_rate {
            positive(context, "target_rate", rate)?;
        }
        match self.format {
            TraceFormat::Timestamps => {
                // Azure-only fields set on a timestamps trace are a misplaced setting, not a no-op.
                if let Some(f) = &self.function {
                    return Err(Error::invalid(
                        context,
                        format!("function = \"{f}\" applies only to format = \"azure_functions\""),
                    ));
                }
                if self.minute_s != default_minute_s() {
                    return Err(Error::invalid(
                        context,
                        format!("minute_s = {} applies only to format = \"azure_functions\"", self.minute_s),
                    ));
                }
                if self.start_minute != 0 {
                    return Err(Error::invalid(
                        context,
                        format!("start_minute = {} applies only to format = \"azure_functions\"", self.start_minute),
                    ));
                }
            }
            TraceFormat::AzureFunctions => {
                if self.unit != TimeUnit::S {
                    return Err(Error::invalid(context, "unit = \"ms\" applies only to format = \"timestamps\""));
                }
                positive(context, "minute_s", self.minute_s)?;
                if self.start_minute >= AZURE_MINUTES {
                    return Err(Error::invalid(
                        context,
                        format!("start_minute = {} must be below {AZURE_MINUTES}", self.start_minute),
                    ));
                }
            }
        }
        Ok(())
    }

    fn schedule(
        &self,
        duration_s: f64,
        min_queries: usize,
        rng: &mut ChaCha8Rng,
        base_dir: &Path,
        context: &str,
    ) -> Result<Vec<u64>> {
        let path = self.resolve(base_dir);
        let context = format!("{context}, trace {}", path.display());
        match self.format {
            TraceFormat::Timestamps => {
                let values = load_timestamps(&path)?;
                let times = relative_times(&values, self.unit, self.target_rate, &context)?;
                let mut iter = times.into_iter();
                collect_open(duration_s, min_queries, &context, || iter.next())
            }
            TraceFormat::AzureFunctions => {
                let trace = load_azure(&path)?;
                let function = trace.select(self.function.as_deref())?;
                let mut process = self.azure_process(function, duration_s, &context)?;
                collect_open(duration_s, min_queries, &context, || process.next(rng))
            }
        }
    }

    /// The piecewise-constant Poisson process replaying `function`, scaled to `target_rate`.
    fn azure_process(&self, function: &AzureFunction, duration_s: f64, context: &str) -> Result<PiecewisePoisson> {
        let segments: Vec<(f64, f64)> = (0..AZURE_MINUTES)
            .map(|i| {
                let count = function.counts[(self.start_minute + i) % AZURE_MINUTES];
                (self.minute_s, f64::from(count) / self.minute_s)
            })
            .collect();
        let mut process = PiecewisePoisson::new(segments);
        if let Some(target) = self.target_rate {
            let window_s = if duration_s > 0.0 { duration_s } else { process.cycle_len };
            let expected = process.expected_count(window_s);
            if expected.is_nan() || expected <= 0.0 {
                let message = if function.total() == 0 {
                    format!("function `{}` has no invocations in the file", function.function)
                } else {
                    let minutes = (window_s / self.minute_s).ceil().min(AZURE_MINUTES as f64) as usize;
                    format!(
                        "function `{}` has no invocations in the {minutes} minute(s) replayed from minute {}",
                        function.function, self.start_minute
                    )
                };
                return Err(Error::invalid(context, format!("{message}, so target_rate = {target} cannot be reached")));
            }
            process.scale(target * window_s / expected);
        }
        Ok(process)
    }
}

/// Times of a timestamps trace in seconds, relative to the first, optionally rescaled so that the
/// mean inter-arrival time is 1/target_rate.
fn relative_times(values: &[f64], unit: TimeUnit, target_rate: Option<f64>, context: &str) -> Result<Vec<f64>> {
    let Some(&first) = values.first() else {
        return Err(Error::invalid(context, "trace holds no arrival times"));
    };
    let mut times: Vec<f64> = values.iter().map(|v| (v - first) * unit.seconds()).collect();
    if let Some(target) = target_rate {
        let span = times.last().copied().unwrap_or(0.0);
        if times.len() < 2 || span.is_nan() || span <= 0.0 {
            return Err(Error::invalid(
                context,
                format!(
                    "target_rate = {target} needs at least two distinct arrival times; the trace has {} spanning {span} s",
                    times.len()
                ),
            ));
        }
        let factor = (times.len() - 1) as f64 / (span * target);
        for t in &mut times {
            *t *= factor;
        }
    }
    Ok(times)
}

/// The arrivals of one tenant, fully built before timing starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Arrival times in nanoseconds from the start of the measured window, non-decreasing.
    Open { arrivals_ns: Vec<u64> },
    /// Per client, its successive think times in nanoseconds (enough for the whole run, see
    /// [`ArrivalProcess::schedule`]; read them through [`Schedule::think_time_ns`]).
    Closed { clients: usize, think_ns: Vec<Vec<u64>> },
}

impl Schedule {
    /// The think time before request `index + 1` of `client` (0-based), None for an open schedule
    /// or a client that does not exist. A client that has used up its list starts it again: only
    /// a think time too short to be drawn in full for the run (see
    /// [`MAX_THINK_TIMES_PER_CLIENT`]) or zero think time ever gets there.
    pub fn think_time_ns(&self, client: usize, index: usize) -> Option<u64> {
        match self {
            Schedule::Open { .. } => None,
            Schedule::Closed { think_ns, .. } => {
                let list = think_ns.get(client)?;
                if list.is_empty() { None } else { Some(list[index % list.len()]) }
            }
        }
    }

    /// Offered rate of an open schedule over [0, duration_s): the arrivals before duration_s
    /// divided by duration_s. This is how a trace's rate is known once it has been read. None
    /// for a closed loop (its rate depends on completions) or duration_s <= 0.
    pub fn offered_rate(&self, duration_s: f64) -> Option<f64> {
        match self {
            Schedule::Open { arrivals_ns } if duration_s > 0.0 => {
                let end_ns = duration_s * 1e9;
                let n = arrivals_ns.iter().take_while(|&&t| (t as f64) < end_ns).count();
                Some(n as f64 / duration_s)
            }
            _ => None,
        }
    }
}

impl ArrivalProcess {
    /// Checks the parameters: rates finite and > 0 (rate_off >= 0), cv > 0, spread in [0, 1],
    /// on_s > 0, off_s >= 0, clients >= 1, think_ms >= 0, minute_s > 0, start_minute < 1440,
    /// and no field of the other trace format. `context` (e.g. "suite default.toml, scenario x,
    /// tenant resnet50") starts the error, which names the parameter and its value.
    pub fn validate(&self, context: &str) -> Result<()> {
        match self {
            ArrivalProcess::Poisson { rate } => positive(context, "rate", *rate),
            ArrivalProcess::Uniform { rate, spread } => {
                positive(context, "rate", *rate)?;
                if !(0.0..=1.0).contains(spread) {
                    return Err(Error::invalid(context, format!("spread = {spread} must be in [0, 1]")));
                }
                Ok(())
            }
            ArrivalProcess::Gamma { rate, cv } => {
                positive(context, "rate", *rate)?;
                positive(context, "cv", *cv)
            }
            ArrivalProcess::OnOff { rate_on, on_s, off_s, rate_off } => {
                positive(context, "rate_on", *rate_on)?;
                positive(context, "on_s", *on_s)?;
                non_negative(context, "off_s", *off_s)?;
                non_negative(context, "rate_off", *rate_off)
            }
            ArrivalProcess::ClosedLoop { clients, think_ms, .. } => {
                if *clients == 0 {
                    return Err(Error::invalid(context, "clients = 0 must be at least 1"));
                }
                non_negative(context, "think_ms", *think_ms)
            }
            ArrivalProcess::Trace(spec) => spec.validate(context),
        }
    }

    /// Builds the schedule for a run of at least `duration_s` seconds and at least `min_queries`
    /// requests, after [`validate`](Self::validate).
    ///
    /// Open processes: every arrival before `duration_s`, then more until there are
    /// `min_queries` (so the schedule runs past `duration_s` when `min_queries` demands it). A
    /// timestamps trace stops where the file does, even short of both; an Azure trace with no
    /// invocations in the day gives no arrivals.
    ///
    /// Closed loops: per client, think times whose sum covers `duration_s` plus a margin of
    /// max(1 s, 10 % of duration_s), and at least ceil(min_queries / clients) + 1 of them; each
    /// client draws from its own stream of the seed. A client's list stops early at
    /// [`MAX_THINK_TIMES_PER_CLIENT`] (think times of microseconds) or when think_ms = 0.
    ///
    /// `seed` is the schedule seed (request inputs use another). `base_dir` resolves a relative
    /// trace path. The same arguments always give the same schedule.
    pub fn schedule(
        &self,
        duration_s: f64,
        min_queries: usize,
        seed: u64,
        base_dir: &Path,
        context: &str,
    ) -> Result<Schedule> {
        self.validate(context)?;
        if !(duration_s.is_finite() && duration_s >= 0.0) {
            return Err(Error::invalid(context, format!("duration_s = {duration_s} must be a finite number >= 0")));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let arrivals_ns = match self {
            ArrivalProcess::Poisson { rate } => {
                let mean = 1.0 / rate;
                renewal(duration_s, min_queries, context, || exp1(&mut rng) * mean)?
            }
            ArrivalProcess::Uniform { rate, spread } => {
                let (low, width) = ((1.0 - spread) / rate, 2.0 * spread / rate);
                renewal(duration_s, min_queries, context, || low + width * rng.random::<f64>())?
            }
            ArrivalProcess::Gamma { rate, cv } => {
                let gamma = Gamma::new(1.0 / (cv * cv), cv * cv / rate)
                    .map_err(|e| Error::invalid(context, format!("gamma with rate = {rate}, cv = {cv}: {e}")))?;
                renewal(duration_s, min_queries, context, || gamma.sample(&mut rng))?
            }
            ArrivalProcess::OnOff { rate_on, on_s, off_s, rate_off } => {
                let mut process = PiecewisePoisson::new(vec![(*on_s, *rate_on), (*off_s, *rate_off)]);
                collect_open(duration_s, min_queries, context, || process.next(&mut rng))?
            }
            ArrivalProcess::ClosedLoop { clients, think_ms, think } => {
                return closed_loop(*clients, *think_ms, *think, duration_s, min_queries, seed, context);
            }
            ArrivalProcess::Trace(spec) => spec.schedule(duration_s, min_queries, &mut rng, base_dir, context)?,
        };
        Ok(Schedule::Open { arrivals_ns })
    }

    /// The same process with every rate scaled by one factor so that its mean rate is `rate`
    /// (a trace gets `target_rate`). Used when a tenant's load is given as a fraction of its
    /// solo capacity. A closed loop has no rate to scale.
    pub fn with_rate(&self, rate: f64, context: &str) -> Result<ArrivalProcess> {
        positive(context, "rate", rate)?;
        let scaled = match self {
            ArrivalProcess::Poisson { .. } => ArrivalProcess::Poisson { rate },
            ArrivalProcess::Uniform { spread, .. } => ArrivalProcess::Uniform { rate, spread: *spread },
            ArrivalProcess::Gamma { cv, .. } => ArrivalProcess::Gamma { rate, cv: *cv },
            ArrivalProcess::OnOff { rate_on, on_s, off_s, rate_off } => {
                let mean = (rate_on * on_s + rate_off * off_s) / (on_s + off_s);
                positive(context, "mean rate of the on/off process", mean)?;
                let f = rate / mean;
                ArrivalProcess::OnOff { rate_on: rate_on * f, on_s: *on_s, off_s: *off_s, rate_off: rate_off * f }
            }
            ArrivalProcess::ClosedLoop { .. } => {
                return Err(Error::invalid(
                    context,
                    "a closed loop has no rate: give `clients` and `think_ms` instead of a load",
                ));
            }
            ArrivalProcess::Trace(spec) => ArrivalProcess::Trace(TraceSpec { target_rate: Some(rate), ..spec.clone() }),
        };
        Ok(scaled)
    }

    /// Mean offered rate in requests/s where it is known without reading anything: the long-run
    /// mean of a synthetic open process ((rate_on·on_s + rate_off·off_s) / (on_s + off_s) for
    /// on/off), a trace's `target_rate` if it has one. None for closed loops (the rate depends on
    /// completions) and traces without target_rate (use [`Schedule::offered_rate`]).
    pub fn nominal_rate(&self) -> Option<f64> {
        match self {
            ArrivalProcess::Poisson { rate }
            | ArrivalProcess::Uniform { rate, .. }
            | ArrivalProcess::Gamma { rate, .. } => Some(*rate),
            ArrivalProcess::OnOff { rate_on, on_s, off_s, rate_off } => {
                Some((rate_on * on_s + rate_off * off_s) / (on_s + off_s))
            }
            ArrivalProcess::ClosedLoop { .. } => None,
            ArrivalProcess::Trace(spec) => spec.target_rate,
        }
    }
}

fn positive(context: &str, name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(context, format!("{name} = {value} must be a finite number > 0")))
    }
}

fn non_negative(context: &str, name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(context, format!("{name} = {value} must be a finite number >= 0")))
    }
}

/// A draw from the exponential distribution with mean 1.
fn exp1(rng: &mut ChaCha8Rng) -> f64 {
    Exp1.sample(rng)
}

fn to_ns(t_s: f64) -> u64 {
    (t_s * 1e9).round() as u64
}

/// Arrivals of a renewal process whose inter-arrival times `gap` draws, starting at 0.
fn renewal(duration_s: f64, min_queries: usize, context: &str, mut gap: impl FnMut() -> f64) -> Result<Vec<u64>> {
    let mut t = 0.0;
    collect_open(duration_s, min_queries, context, || {
        t += gap();
        Some(t)
    })
}

/// Takes the arrival times (seconds, non-decreasing) that `next` yields: all before
/// `duration_s`, then more until there are `min_queries`, stopping early if `next` runs out.
fn collect_open(
    duration_s: f64,
    min_queries: usize,
    context: &str,
    mut next: impl FnMut() -> Option<f64>,
) -> Result<Vec<u64>> {
    let mut arrivals = Vec::new();
    while let Some(t) = next() {
        if t >= duration_s && arrivals.len() >= min_queries {
            break;
        }
        if arrivals.len() == MAX_SCHEDULE_LEN {
            return Err(Error::invalid(
                context,
                format!(
                    "the schedule for duration_s = {duration_s} and min_queries = {min_queries} would exceed \
                     {MAX_SCHEDULE_LEN} arrivals; lower the rate, the duration or min_queries"
                ),
            ));
        }
        arrivals.push(to_ns(t));
    }
    Ok(arrivals)
}

fn closed_loop(
    clients: usize,
    think_ms: f64,
    think: ThinkTime,
    duration_s: f64,
    min_queries: usize,
    seed: u64,
    context: &str,
) -> Result<Schedule> {
    let min_per_client = min_queries.div_ceil(clients) + 1;
    if min_per_client.saturating_mul(clients) > MAX_SCHEDULE_LEN {
        return Err(Error::invalid(
            context,
            format!(
                "clients = {clients} with min_queries = {min_queries} would need more than {MAX_SCHEDULE_LEN} think times"
            ),
        ));
    }
    let cap = (MAX_SCHEDULE_LEN / clients).min(MAX_THINK_TIMES_PER_CLIENT).max(min_per_client);
    let horizon_s = duration_s + (0.1 * duration_s).max(1.0);
    let mean_s = think_ms * 1e-3;
    let think_ns = (0..clients)
        .map(|client| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(client as u64);
            let mut list = Vec::with_capacity(min_per_client);
            let mut covered_s = 0.0;
            while list.len() < min_per_client || (mean_s > 0.0 && covered_s < horizon_s && list.len() < cap) {
                let t_s = match think {
                    ThinkTime::Exponential => mean_s * exp1(&mut rng),
                    ThinkTime::Fixed => mean_s,
                };
                covered_s += t_s;
                list.push(to_ns(t_s));
            }
            list
        })
        .collect();
    Ok(Schedule::Closed { clients, think_ns })
}

/// A Poisson process whose rate is constant on each of a cycle of segments, repeated forever.
/// Arrivals are drawn by time rescaling: an Exp(1) amount of "work" is consumed at the rate of
/// the segments it crosses, which is exact for piecewise-constant rates.
#[derive(Clone, Debug)]
struct PiecewisePoisson {
    /// (length in seconds, rate in requests/s) of each segment of one cycle.
    segments: Vec<(f64, f64)>,
    /// Start of each segment within the cycle.
    starts: Vec<f64>,
    cycle_len: f64,
    /// Expected arrivals per cycle.
    cycle_work: f64,
    segment: usize,
    cycle: u64,
    /// Position within the current segment, seconds.
    offset: f64,
}

impl PiecewisePoisson {
    fn new(segments: Vec<(f64, f64)>) -> Self {
        let starts = segments
            .iter()
            .scan(0.0, |start, (len, _)| {
                let s = *start;
                *start += len;
                Some(s)
            })
            .collect();
        let cycle_len = segments.iter().map(|(len, _)| len).sum();
        let cycle_work = segments.iter().map(|(len, rate)| len * rate).sum();
        PiecewisePoisson { segments, starts, cycle_len, cycle_work, segment: 0, cycle: 0, offset: 0.0 }
    }

    fn scale(&mut self, factor: f64) {
        for (_, rate) in &mut self.segments {
            *rate *= factor;
        }
        self.cycle_work *= factor;
    }

    /// Expected number of arrivals in [0, horizon_s).
    fn expected_count(&self, horizon_s: f64) -> f64 {
        let cycles = (horizon_s / self.cycle_len).floor();
        let rest = horizon_s - cycles * self.cycle_len;
        let partial: f64 = self
            .segments
            .iter()
            .zip(&self.starts)
            .map(|((len, rate), start)| rate * (rest - start).clamp(0.0, *len))
            .sum();
        cycles * self.cycle_work + partial
    }

    /// The next arrival time in seconds, None if the rate is zero throughout the cycle.
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<f64> {
        if self.cycle_work.is_nan() || self.cycle_work <= 0.0 {
            return None;
        }
        let mut work = exp1(rng);
        loop {
            let (len, rate) = self.segments[self.segment];
            let available = rate * (len - self.offset).max(0.0);
            if work < available {
                self.offset += work / rate;
                return Some(self.cycle as f64 * self.cycle_len + self.starts[self.segment] + self.offset);
            }
            work -= available;
            self.offset = 0.0;
            self.segment += 1;
            if self.segment == self.segments.len() {
                self.segment = 0;
                self.cycle += 1;
            }
        }
    }
}

fn parse_error(path: &Path, line: usize, column: usize, message: impl Into<String>) -> Error {
    Error::Parse { path: path.to_path_buf(), line, column, message: message.into() }
}

/// The comma-separated fields of a line, trimmed, each with the 1-based character column where
/// it starts (after leading blanks).
fn split_fields(line: &str) -> Vec<(usize, &str)> {
    let mut column = 1;
    line.split(',')
        .map(|piece| {
            let leading = piece.chars().take_while(|c| c.is_whitespace()).count();
            let field = (column + leading, piece.trim());
            column += piece.chars().count() + 1;
            field
        })
        .collect()
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

/// Reads a timestamps trace: the arrival times as written, in the file's unit, non-decreasing.
///
/// One time per line; blank lines and lines starting with `#` are skipped. The first other line
/// is a header if it starts with a letter, `_` or `"` (e.g. `timestamp`). A file with several
/// comma-separated columns needs a header with a column named `timestamp` or `time` (any case),
/// and every row must have as many columns as the header. Errors: a value that is not a finite
/// number (line and column), a time below the one before it (naming both values and lines).
pub fn load_timestamps(path: impl AsRef<Path>) -> Result<Vec<f64>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_timestamps(path, &text)
}

fn parse_timestamps(path: &Path, text: &str) -> Result<Vec<f64>> {
    // (number of columns, index of the time column), fixed by the first non-comment line.
    let mut layout: Option<(usize, usize)> = None;
    let mut times = Vec::new();
    // The previous time, as parsed and as written, and its line.
    let mut previous: Option<(f64, &str, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_fields(raw);
        let (columns, index) = match layout {
            Some(l) => l,
            None => {
                let starts_like_a_name = trimmed.starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '"');
                if starts_like_a_name {
                    let index = if fields.len() == 1 {
                        0
                    } else {
                        let names: Vec<&str> = fields.iter().map(|(_, f)| unquote(f)).collect();
                        names
                            .iter()
                            .position(|n| n.eq_ignore_ascii_case("timestamp") || n.eq_ignore_ascii_case("time"))
                            .ok_or_else(|| {
                                parse_error(
                                    path,
                                    line,
                                    1,
                                    format!(
                                        "the header has columns {} but none is named `timestamp` or `time`",
                                        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                                    ),
                                )
                            })?
                    };
                    layout = Some((fields.len(), index));
                    continue;
                }
                if fields.len() > 1 {
                    return Err(parse_error(
                        path,
                        line,
                        1,
                        "a file with several columns needs a header line naming a `timestamp` or `time` column",
                    ));
                }
                layout = Some((1, 0));
                (1, 0)
            }
        };
        if fields.len() != columns {
            let column = fields.get(columns).map_or(raw.chars().count() + 1, |(c, _)| *c);
            return Err(parse_error(
                path,
                line,
                column,
                format!("{} comma-separated columns, expected {columns} as in the header", fields.len()),
            ));
        }
        let (column, value) = fields[index];
        let time: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| parse_error(path, line, column, format!("`{value}` is not a time (a finite number)")))?;
        if let Some((before_time, before, before_line)) = previous {
            if time < before_time {
                return Err(parse_error(
                    path,
                    line,
                    column,
                    format!(
                        "time {value} on line {line} is earlier than time {before} on line {before_line}; \
                         times must be non-decreasing"
                    ),
                ));
            }
        }
        previous = Some((time, value, line));
        times.push(time);
    }
    if times.is_empty() {
        return Err(Error::invalid(path.display().to_string(), "the trace file holds no arrival times"));
    }
    Ok(times)
}

/// One row of an Azure Functions per-minute invocation file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureFunction {
    pub owner: String,
    pub app: String,
    /// The HashFunction column, which selects the function.
    pub function: String,
    pub trigger: String,
    /// Invocations in each minute of the day, [`AZURE_MINUTES`] of them.
    pub counts: Vec<u32>,
}

impl AzureFunction {
    /// Invocations over the whole day.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// An Azure Functions 2019 per-minute invocation file (`invocations_per_function_md.anon.dXX.csv`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureTrace {
    pub functions: Vec<AzureFunction>,
}

impl AzureTrace {
    /// The function named by `function`: an exact HashFunction, or a prefix of at least
    /// [`MIN_HASH_PREFIX`] characters matching exactly one. None selects the function with the
    /// most invocations (the first such row on a tie). An unknown name is `Error::Unknown` with
    /// the nearest hashes; an ambiguous one is `Error::Invalid` listing its matches.
    pub fn select(&self, function: Option<&str>) -> Result<&AzureFunction> {
        let Some(name) = function else {
            let mut best: Option<&AzureFunction> = None;
            for f in &self.functions {
                if best.is_none_or(|b| f.total() > b.total()) {
                    best = Some(f);
                }
            }
            return best.ok_or_else(|| Error::invalid("azure trace", "holds no functions"));
        };
        let exact: Vec<&AzureFunction> = self.functions.iter().filter(|f| f.function == name).collect();
        let matches = if !exact.is_empty() {
            exact
        } else {
            let prefixed: Vec<&AzureFunction> =
                self.functions.iter().filter(|f| f.function.starts_with(name)).collect();
            if !prefixed.is_empty() && name.chars().count() < MIN_HASH_PREFIX {
                return Err(Error::invalid(
                    format!("trace function `{name}`"),
                    format!("a prefix needs at least {MIN_HASH_PREFIX} characters of the HashFunction"),
                ));
            }
            prefixed
        };
        match matches.as_slice() {
            [] => Err(self.unknown(name)),
            [one] => Ok(one),
            many => Err(Error::invalid(
                format!("trace function `{name}`"),
                format!(
                    "matches {} rows: {}",
                    many.len(),
                    many.iter()
                        .take(5)
                        .map(|f| format!("{} (app {})", f.function, f.app))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// `Error::Unknown` for `name`, suggesting the hashes whose prefix of the same length is
    /// nearest to it (a full hash is too long for an edit distance to a prefix to mean anything).
    fn unknown(&self, name: &str) -> Error {
        let width = name.chars().count();
        let prefixes: Vec<(String, &str)> =
            self.functions.iter().map(|f| (f.function.chars().take(width).collect(), f.function.as_str())).collect();
        let near = nearest(name, prefixes.iter().map(|(p, _)| p.as_str()), 3);
        let mut suggestions: Vec<String> = Vec::new();
        for p in &near {
            for (q, full) in &prefixes {
                if q == p && !suggestions.iter().any(|s| s == full) {
                    suggestions.push(full.to_string());
                }
            }
        }
        suggestions.truncate(3);
        Error::Unknown { what: "trace function", name: name.to_string(), suggestions }
    }
}

/// Reads an Azure Functions 2019 per-minute invocation file: the header
/// `HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440`, then one row per function with 1440
/// non-negative integer counts. Blank lines are skipped. Errors give the line and column: a
/// wrong header, a row with the wrong number of columns, a count that is not an integer.
pub fn load_azure(path: impl AsRef<Path>) -> Result<AzureTrace> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_azure(path, &text)
}

fn parse_azure(path: &Path, text: &str) -> Result<AzureTrace> {
    let columns = AZURE_ID_COLUMNS.len() + AZURE_MINUTES;
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(parse_error(path, 1, 1, "empty file, expected the header `HashOwner,HashApp,...`"));
    };
    let header = header.strip_prefix('\u{feff}').unwrap_or(header);
    let fields = split_fields(header);
    for (i, (column, name)) in fields.iter().enumerate() {
        let expected = match AZURE_ID_COLUMNS.get(i) {
            Some(id) => id.to_string(),
            None => (i - AZURE_ID_COLUMNS.len() + 1).to_string(),
        };
        if *name != expected {
            return Err(parse_error(
                path,
                1,
                *column,
                format!("header column {} is `{name}`, expected `{expected}`", i + 1),
            ));
        }
    }
    if fields.len() != columns {
        return Err(parse_error(
            path,
            1,
            header.chars().count() + 1,
            format!(
                "the header has {} columns, expected {columns} (4 ids and minutes 1 to {AZURE_MINUTES})",
                fields.len()
            ),
        ));
    }
    let mut functions = Vec::new();
    for (i, raw) in lines {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields = split_fields(raw);
        if fields.len() != columns {
            let column = fields.get(columns).map_or(raw.chars().count() + 1, |(c, _)| *c);
            return Err(parse_error(
                path,
                line,
                column,
                format!("the row has {} columns, the header {columns}", fields.len()),
            ));
        }
        let counts = fields[AZURE_ID_COLUMNS.len()..]
            .iter()
            .enumerate()
            .map(|(m, (column, value))| {
                value.parse::<u32>().map_err(|_| {
                    parse_error(
                        path,
                        line,
                        *column,
                        format!("the count for minute {} is `{value}`, not a non-negative integer", m + 1),
                    )
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        if fields[2].1.is_empty() {
            return Err(parse_error(path, line, fields[2].0, "empty HashFunction"));
        }
        functions.push(AzureFunction {
            owner: fields[0].1.to_string(),
            app: fields[1].1.to_string(),
            function: fields[2].1.to_string(),
            trigger: fields[3].1.to_string(),
            counts,
        });
    }
    if functions.is_empty() {
        return Err(parse_error(path, 2, 1, "no function rows after the header"));
    }
    Ok(AzureTrace { functions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
    }

    const BUSIEST: &str = "a1b2c3f7e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6";
    const BURST: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const ZEROS: &str = "0e5d7f2a9c4b1e8d3f6a0c7e2b9d4f1a8c5e0b7d2f9a4c1e6b3d8f0a5c2e7b4d";

    fn open(process: &ArrivalProcess, duration_s: f64, min_queries: usize, seed: u64) -> Vec<u64> {
        match process.schedule(duration_s, min_queries, seed, &traces_dir(), "test") {
            Ok(Schedule::Open { arrivals_ns }) => arrivals_ns,
            other => panic!("expected an open schedule, got {other:?}"),
        }
    }

    fn closed(process: &ArrivalProcess, duration_s: f64, min_queries: usize, seed: u64) -> Vec<Vec<u64>> {
        match process.schedule(duration_s, min_queries, seed, &traces_dir(), "test") {
            Ok(Schedule::Closed { think_ns, .. }) => think_ns,
            other => panic!("expected a closed schedule, got {other:?}"),
        }
    }

    /// Inter-arrival times in seconds, the first measured from 0.
    fn gaps_s(arrivals_ns: &[u64]) -> Vec<f64> {
        let mut previous = 0;
        arrivals_ns
            .iter()
            .map(|&t| {
                let gap = (t - previous) as f64 * 1e-9;
                previous = t;
                gap
            })
            .collect()
    }

    fn mean_cv(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt() / mean)
    }

    fn count_in(arrivals_ns: &[u64], from_s: f64, to_s: f64) -> usize {
        arrivals_ns.iter().filter(|&&t| t as f64 >= from_s * 1e9 && (t as f64) < to_s * 1e9).count()
    }

    fn trace(spec: TraceSpec) -> ArrivalProcess {
        ArrivalProcess::Trace(spec)
    }

    fn azure(function: Option<&str>, target_rate: Option<f64>, minute_s: f64, start_minute: usize) -> ArrivalProcess {
        trace(TraceSpec {
            function: function.map(str::to_string),
            target_rate,
            minute_s,
            start_minute,
            ..TraceSpec::new("azure_sample.csv", TraceFormat::AzureFunctions)
        })
    }

    /// A file in the temp directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let path = std::env::temp_dir().join(format!("coloc-arrival-{}-{name}", std::process::id()));
            std::fs::write(&path, text).expect("temp dir is writable");
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn assert_within(what: &str, value: f64, expected: f64, tolerance: f64) {
        let error = (value - expected).abs() / expected;
        assert!(
            error <= tolerance,
            "{what}: {value} vs {expected}, off by {:.2}% > {:.2}%",
            error * 100.0,
            tolerance * 100.0
        );
    }

    #[test]
    fn poisson_inter_arrivals_have_the_requested_mean_and_unit_cv() {
        let arrivals = open(&ArrivalProcess::Poisson { rate: 200.0 }, 100.0, 0, 1);
        assert!(arrivals.len() > 19_000, "{} arrivals", arrivals.len());
        let (mean, cv) = mean_cv(&gaps_s(&arrivals));
        assert_within("mean gap", mean, 1.0 / 200.0, 0.03);
        assert_within("cv", cv, 1.0, 0.05);
    }

    #[test]
    fn poisson_inter_arrivals_pass_a_kolmogorov_smirnov_test_against_the_exponential() {
        let rate = 200.0;
        let mut gaps = gaps_s(&open(&ArrivalProcess::Poisson { rate }, 100.0, 0, 2));
        gaps.sort_by(f64::total_cmp);
        let n = gaps.len() as f64;
        let d = gaps
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let cdf = 1.0 - (-rate * x).exp();
                (cdf - i as f64 / n).abs().max(((i + 1) as f64 / n - cdf).abs())
            })
            .fold(0.0, f64::max);
        let critical = 1.63 / n.sqrt();
        assert!(d < critical, "KS statistic {d} >= {critical} over {n} gaps");
    }

    #[test]
    fn uniform_inter_arrivals_stay_within_their_bounds_and_have_the_requested_mean() {
        let (rate, spread) = (100.0, 0.4);
        let gaps = gaps_s(&open(&ArrivalProcess::Uniform { rate, spread }, 200.0, 0, 3));
        let (low, high) = ((1.0 - spread) / rate, (1.0 + spread) / rate);
        // One nanosecond of slack: arrival times are rounded to whole nanoseconds.
        assert!(gaps.iter().all(|g| (low - 1e-9..=high + 1e-9).contains(g)), "a gap outside [{low}, {high}]");
        let (mean, _) = mean_cv(&gaps);
        assert_within("mean gap", mean, 1.0 / rate, 0.02);
        let full = gaps_s(&open(&ArrivalProcess::Uniform { rate, spread: 1.0 }, 200.0, 0, 3));
        assert!(full.iter().all(|g| *g <= 2.0 / rate + 1e-9));
        assert_within("mean gap with spread 1", mean_cv(&full).0, 1.0 / rate, 0.02);
    }

    #[test]
    fn uniform_with_zero_spread_is_a_constant_rate() {
        let arrivals = open(&ArrivalProcess::Uniform { rate: 4.0, spread: 0.0 }, 1.0, 0, 4);
        assert_eq!(arrivals, vec![250_000_000, 500_000_000, 750_000_000]);
    }

    #[test]
    fn gamma_inter_arrivals_have_the_requested_mean_and_cv() {
        for (cv, seed) in [(0.5, 5), (3.0, 6)] {
            let process = ArrivalProcess::Gamma { rate: 100.0, cv };
            let arrivals = open(&process, 0.0, 100_000, seed);
            assert_eq!(arrivals.len(), 100_000);
            let (mean, measured_cv) = mean_cv(&gaps_s(&arrivals));
            assert_within(&format!("mean gap for cv {cv}"), mean, 0.01, 0.05);
            assert_within(&format!("cv for cv {cv}"), measured_cv, cv, 0.05);
        }
    }

    #[test]
    fn on_off_sends_nothing_during_off_periods_and_rate_on_during_on_periods() {
        let process = ArrivalProcess::OnOff { rate_on: 1000.0, on_s: 0.5, off_s: 1.5, rate_off: 0.0 };
        let arrivals = open(&process, 100.0, 0, 7);
        assert!(arrivals.iter().all(|t| t % 2_000_000_000 <= 500_000_000), "an arrival during an off period");
        // 50 on periods of 0.5 s.
        assert_within("rate during on periods", arrivals.len() as f64 / 25.0, 1000.0, 0.05);
    }

    #[test]
    fn on_off_with_an_off_rate_sends_at_that_rate_during_off_periods() {
        let process = ArrivalProcess::OnOff { rate_on: 1000.0, on_s: 1.0, off_s: 1.0, rate_off: 200.0 };
        let arrivals = open(&process, 100.0, 0, 8);
        let off = arrivals.iter().filter(|&&t| t % 2_000_000_000 >= 1_000_000_000).count();
        assert_within("rate during off periods", off as f64 / 50.0, 200.0, 0.05);
        assert_within("rate during on periods", (arrivals.len() - off) as f64 / 50.0, 1000.0, 0.05);
    }

    #[test]
    fn nominal_rate_is_the_long_run_mean_and_none_for_closed_loops_and_unscaled_traces() {
        assert_eq!(ArrivalProcess::Poisson { rate: 5.0 }.nominal_rate(), Some(5.0));
        let on_off = ArrivalProcess::OnOff { rate_on: 100.0, on_s: 1.0, off_s: 3.0, rate_off: 20.0 };
        assert_eq!(on_off.nominal_rate(), Some(40.0));
        let closed = ArrivalProcess::ClosedLoop { clients: 2, think_ms: 1.0, think: ThinkTime::Fixed };
        assert_eq!(closed.nominal_rate(), None);
        assert_eq!(azure(None, None, 60.0, 0).nominal_rate(), None);
        assert_eq!(azure(None, Some(50.0), 60.0, 0).nominal_rate(), Some(50.0));
    }

    #[test]
    fn closed_loop_exponential_think_times_have_the_requested_mean_per_client() {
        let process = ArrivalProcess::ClosedLoop { clients: 4, think_ms: 10.0, think: ThinkTime::Exponential };
        let per_client = closed(&process, 200.0, 0, 9);
        assert_eq!(per_client.len(), 4);
        for (client, list) in per_client.iter().enumerate() {
            let ms: Vec<f64> = list.iter().map(|&t| t as f64 * 1e-6).collect();
            assert_within(&format!("mean think time of client {client}"), mean_cv(&ms).0, 10.0, 0.03);
        }
        assert_ne!(per_client[0], per_client[1], "clients must draw independent think times");
    }

    #[test]
    fn closed_loop_fixed_think_times_are_all_equal() {
        let process = ArrivalProcess::ClosedLoop { clients: 2, think_ms: 2.5, think: ThinkTime::Fixed };
        for list in closed(&process, 1.0, 0, 10) {
            assert!(!list.is_empty());
            assert!(list.iter().all(|&t| t == 2_500_000));
        }
    }

    #[test]
    fn closed_loop_think_times_cover_min_queries_and_the_duration() {
        let process = ArrivalProcess::ClosedLoop { clients: 3, think_ms: 100.0, think: ThinkTime::Exponential };
        for (duration_s, min_queries) in [(10.0, 1000), (10.0, 10), (0.0, 0)] {
            for list in closed(&process, duration_s, min_queries, 11) {
                assert!(
                    list.len() > min_queries.div_ceil(3),
                    "{} think times for min_queries {min_queries}",
                    list.len()
                );
                let sum_s = list.iter().sum::<u64>() as f64 * 1e-9;
                assert!(sum_s >= duration_s + 1.0, "think times sum to {sum_s} s for duration {duration_s} s");
            }
        }
        let no_think = ArrivalProcess::ClosedLoop { clients: 2, think_ms: 0.0, think: ThinkTime::Exponential };
        let schedule = no_think.schedule(10.0, 7, 11, &traces_dir(), "test").expect("valid");
        assert_eq!(schedule, Schedule::Closed { clients: 2, think_ns: vec![vec![0; 5]; 2] });
        assert_eq!(schedule.think_time_ns(1, 1_000), Some(0));
        assert_eq!(schedule.think_time_ns(2, 0), None);
    }

    #[test]
    fn min_queries_extends_an_open_schedule_past_the_duration() {
        let arrivals = open(&ArrivalProcess::Poisson { rate: 10.0 }, 1.0, 500, 12);
        assert_eq!(arrivals.len(), 500);
        assert!(*arrivals.last().expect("500 arrivals") > 1_000_000_000);
    }

    #[test]
    fn duration_extends_an_open_schedule_past_min_queries() {
        // A rate of 128/s keeps every arrival time exact in binary: k/128 s for k = 1, 2, ...
        let arrivals = open(&ArrivalProcess::Uniform { rate: 128.0, spread: 0.0 }, 10.0, 5, 13);
        // All arrivals before the 10 s duration: k = 1 to 1279.
        assert_eq!(arrivals.len(), 1279);
        assert_eq!(arrivals.last(), Some(&9_992_187_500));
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_a_different_one() {
        let processes = [
            ArrivalProcess::Poisson { rate: 50.0 },
            ArrivalProcess::Uniform { rate: 50.0, spread: 0.5 },
            ArrivalProcess::Gamma { rate: 50.0, cv: 2.0 },
            ArrivalProcess::OnOff { rate_on: 100.0, on_s: 0.5, off_s: 0.5, rate_off: 0.0 },
            ArrivalProcess::ClosedLoop { clients: 3, think_ms: 5.0, think: ThinkTime::Exponential },
            azure(None, Some(50.0), 1.0, 0),
        ];
        for process in &processes {
            let run = |seed| process.schedule(5.0, 10, seed, &traces_dir(), "test").expect("valid");
            assert_eq!(run(42), run(42), "{process:?}");
            assert_ne!(run(42), run(43), "{process:?}");
        }
    }

    #[test]
    fn timestamps_fixture_is_replayed_relative_to_its_first_time() {
        let values = load_timestamps(traces_dir().join("timestamps_sample.txt")).expect("fixture parses");
        assert_eq!(values.len(), 50);
        assert_eq!(values[0], 1000.0);
        let process = trace(TraceSpec::new("timestamps_sample.txt", TraceFormat::Timestamps));
        let arrivals = open(&process, 10.0, 0, 14);
        assert_eq!(arrivals.len(), 50);
        assert_eq!(&arrivals[..3], &[0, 13_000_000, 20_000_000]);
        assert_eq!(arrivals.last(), Some(&632_000_000));
        // A duration shorter than the trace cuts it: arrivals at 0, 13 and 20 ms are before 21 ms.
        assert_eq!(open(&process, 0.021, 0, 14).len(), 3);
    }

    #[test]
    fn timestamps_target_rate_rescales_the_mean_rate_exactly() {
        let spec =
            TraceSpec { target_rate: Some(100.0), ..TraceSpec::new("timestamps_sample.txt", TraceFormat::Timestamps) };
        let arrivals = open(&trace(spec), 10.0, 0, 15);
        assert_eq!(arrivals.len(), 50);
        // 49 gaps with a mean of 10 ms.
        let last = *arrivals.last().expect("50 arrivals");
        assert!(last.abs_diff(490_000_000) <= 1, "last arrival at {last} ns");
        // One factor for all gaps: the second gap stays 7/13 of the first.
        let ratio = (arrivals[2] - arrivals[1]) as f64 / arrivals[1] as f64;
        assert!((ratio - 7.0 / 13.0).abs() < 1e-6, "ratio {ratio}");
    }

    #[test]
    fn timestamps_trace_shorter_than_min_queries_ends_without_looping() {
        let process = trace(TraceSpec::new("timestamps_sample.txt", TraceFormat::Timestamps));
        assert_eq!(open(&process, 100.0, 1_000, 16).len(), 50);
    }

    #[test]
    fn decreasing_timestamps_are_a_parse_error_naming_the_line_and_both_values() {
        let file = TempFile::new("decreasing.txt", "timestamp\n1.0\n2.5\n\n2.25\n");
        match load_timestamps(&file.0) {
            Err(e @ Error::Parse { line: 5, column: 1, .. }) => {
                let text = e.to_string();
                assert!(text.contains("2.25") && text.contains("2.5") && text.contains("line 5"), "{text}");
                assert!(text.contains("decreasing.txt"), "{text}");
            }
            other => panic!("expected a parse error on line 5, got {other:?}"),
        }
    }

    #[test]
    fn a_non_numeric_timestamp_is_a_parse_error_with_line_and_column() {
        let file = TempFile::new("non-numeric.csv", "# comment\nid,time\n1, 0.5\n2,  0.7s\n");
        match load_timestamps(&file.0) {
            Err(Error::Parse { line, column, message, .. }) => {
                assert_eq!((line, column), (4, 5), "{message}");
                assert!(message.contains("0.7s"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn csv_timestamps_use_the_named_column_and_milliseconds_convert() {
        let file = TempFile::new("columns.csv", "request,timestamp,model\n1,2000,a\n2,2250,b\n3,2250,c\n");
        assert_eq!(load_timestamps(&file.0).expect("parses"), vec![2000.0, 2250.0, 2250.0]);
        let spec = TraceSpec { unit: TimeUnit::Ms, ..TraceSpec::new(&file.0, TraceFormat::Timestamps) };
        // An absolute path ignores the base directory.
        assert_eq!(open(&trace(spec), 1.0, 0, 17), vec![0, 250_000_000, 250_000_000]);

        let no_time = TempFile::new("no-time.csv", "a,b\n1,2\n");
        let err = load_timestamps(&no_time.0).expect_err("no time column");
        assert!(matches!(err, Error::Parse { line: 1, .. }) && err.to_string().contains("`timestamp`"), "{err}");
        let no_header = TempFile::new("no-header.csv", "1,2\n");
        assert!(matches!(load_timestamps(&no_header.0), Err(Error::Parse { line: 1, .. })));
        let ragged = TempFile::new("ragged.csv", "time,x\n1,2\n3\n");
        assert!(matches!(load_timestamps(&ragged.0), Err(Error::Parse { line: 3, .. })));
    }

    #[test]
    fn a_missing_trace_file_is_an_io_error_naming_the_resolved_path() {
        let process = trace(TraceSpec::new("no_such_trace.txt", TraceFormat::Timestamps));
        let err = process.schedule(1.0, 0, 0, &traces_dir(), "test").expect_err("missing file");
        assert!(matches!(&err, Error::Io { path, .. } if *path == traces_dir().join("no_such_trace.txt")), "{err}");
    }

    #[test]
    fn azure_fixture_loads_three_functions_of_a_day_each() {
        let trace = load_azure(traces_dir().join("azure_sample.csv")).expect("fixture parses");
        assert_eq!(trace.functions.len(), 3);
        assert!(trace.functions.iter().all(|f| f.counts.len() == AZURE_MINUTES));
        let totals: Vec<u64> = trace.functions.iter().map(AzureFunction::total).collect();
        assert_eq!(totals, vec![0, 29_700, 43_200]);
        assert_eq!(trace.functions[1].trigger, "http");
    }

    #[test]
    fn azure_default_function_is_the_busiest() {
        let trace = load_azure(traces_dir().join("azure_sample.csv")).expect("fixture parses");
        assert_eq!(trace.select(None).expect("a function").function, BUSIEST);
        // The busiest function is 30 per minute: 30 per second with minute_s = 1.
        let arrivals = open(&azure(None, None, 1.0, 0), 100.0, 0, 18);
        assert_within("rate of the default function", arrivals.len() as f64 / 100.0, 30.0, 0.05);
    }

    #[test]
    fn azure_unique_prefix_selects_a_function_and_a_short_or_ambiguous_one_does_not() {
        let trace = load_azure(traces_dir().join("azure_sample.csv")).expect("fixture parses");
        assert_eq!(trace.select(Some("a1b2c3d")).expect("unique").function, BURST);
        assert_eq!(trace.select(Some(BURST)).expect("exact").function, BURST);
        let ambiguous = trace.select(Some("a1b2c3")).expect_err("two functions start with a1b2c3");
        assert!(ambiguous.to_string().contains("matches 2 rows"), "{ambiguous}");
        let short = trace.select(Some("0e5d7")).expect_err("5 characters are too few");
        assert!(short.to_string().contains("at least 6"), "{short}");
    }

    #[test]
    fn azure_unknown_function_is_an_unknown_error_with_the_nearest_hash() {
        let trace = load_azure(traces_dir().join("azure_sample.csv")).expect("fixture parses");
        match trace.select(Some("0e5d7f2b")) {
            Err(Error::Unknown { name, suggestions, .. }) => {
                assert_eq!(name, "0e5d7f2b");
                assert_eq!(suggestions, vec![ZEROS.to_string()]);
            }
            other => panic!("expected Error::Unknown, got {other:?}"),
        }
        let process = azure(Some("ffffffffff"), None, 60.0, 0);
        let err = process.schedule(1.0, 0, 0, &traces_dir(), "test").expect_err("unknown");
        assert!(err.to_string().starts_with("unknown trace function `ffffffffff`"), "{err}");
    }

    #[test]
    fn azure_target_rate_is_reached_over_a_long_window() {
        // The bursty function over a whole day compressed to 144 s.
        let arrivals = open(&azure(Some(BURST), Some(200.0), 0.1, 0), 144.0, 0, 19);
        assert_within("realised mean rate", arrivals.len() as f64 / 144.0, 200.0, 0.03);
    }

    #[test]
    fn azure_target_rate_keeps_the_per_minute_shape() {
        // From minute 8 with 4 s per minute: minutes 10 to 14 (200 per minute) are seconds 8 to
        // 28, the other 15 minutes of the 80 s window have 20 per minute.
        let arrivals = open(&azure(Some(BURST), Some(1000.0), 4.0, 8), 80.0, 0, 20);
        assert_within("mean rate", arrivals.len() as f64 / 80.0, 1000.0, 0.03);
        let burst = count_in(&arrivals, 8.0, 28.0) as f64 / 20.0;
        let quiet = (arrivals.len() - count_in(&arrivals, 8.0, 28.0)) as f64 / 60.0;
        assert_within("burst / quiet rate", burst / quiet, 10.0, 0.05);
    }

    #[test]
    fn azure_start_minute_wraps_around_the_end_of_the_day() {
        // From minute 1435 with 1 s per minute: minutes 1435..1439 and 0..9 are quiet (20 per
        // minute), the burst of minutes 10 to 14 arrives at seconds 15 to 20.
        let arrivals = open(&azure(Some(BURST), None, 1.0, 1435), 20.0, 0, 21);
        assert_within("quiet rate", count_in(&arrivals, 0.0, 15.0) as f64 / 15.0, 20.0, 0.15);
        assert_within("burst rate", count_in(&arrivals, 15.0, 20.0) as f64 / 5.0, 200.0, 0.1);
    }

    #[test]
    fn azure_minute_s_compresses_time() {
        // 30 invocations per minute, a day in 720 s: about 43200 arrivals, about 60 per second.
        let arrivals = open(&azure(Some(BUSIEST), None, 0.5, 0), 720.0, 0, 22);
        assert_within("arrivals in a compressed day", arrivals.len() as f64, 43_200.0, 0.03);
        let real_time = open(&azure(Some(BUSIEST), None, 60.0, 0), 720.0, 0, 22);
        assert_within("arrivals in 12 real-time minutes", real_time.len() as f64, 360.0, 0.15);
    }

    #[test]
    fn azure_all_zero_function_with_a_target_rate_is_rejected() {
        let err =
            azure(Some(ZEROS), Some(10.0), 1.0, 0).schedule(10.0, 0, 0, &traces_dir(), "tenant t").expect_err("zero");
        let text = err.to_string();
        assert!(
            text.contains("no invocations") && text.contains("target_rate = 10") && text.contains("tenant t"),
            "{text}"
        );
        // Without a target rate it is simply an empty schedule, even when queries are asked for.
        assert!(open(&azure(Some(ZEROS), None, 1.0, 0), 10.0, 100, 0).is_empty());
        // A function that is quiet only in the replayed minutes is rejected too.
        let file = TempFile::new(
            "quiet.csv",
            &format!("{}\no,a,late,http,{}5\n", azure_header(), "0,".repeat(AZURE_MINUTES - 1)),
        );
        let process =
            trace(TraceSpec { target_rate: Some(1.0), ..TraceSpec::new(&file.0, TraceFormat::AzureFunctions) });
        let err = process.schedule(60.0, 0, 0, &traces_dir(), "test").expect_err("quiet window");
        assert!(err.to_string().contains("1 minute(s) replayed from minute 0"), "{err}");
    }

    fn azure_header() -> String {
        let minutes: Vec<String> = (1..=AZURE_MINUTES).map(|m| m.to_string()).collect();
        format!("HashOwner,HashApp,HashFunction,Trigger,{}", minutes.join(","))
    }

    #[test]
    fn azure_row_with_the_wrong_column_count_is_a_parse_error_naming_its_line() {
        let file = TempFile::new("short-row.csv", &format!("{}\n\no,a,f,http,{}1\n", azure_header(), "1,".repeat(99)));
        match load_azure(&file.0) {
            Err(Error::Parse { line, message, .. }) => {
                assert_eq!(line, 3, "{message}");
                assert!(message.contains("104 columns"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn azure_bad_header_or_count_is_a_parse_error_with_line_and_column() {
        let bad_header = azure_header().replace("HashFunction", "HashFunc");
        let file = TempFile::new("bad-header.csv", &format!("{bad_header}\n"));
        match load_azure(&file.0) {
            Err(Error::Parse { line, column, message, .. }) => {
                assert_eq!((line, column), (1, "HashOwner,HashApp,".len() + 1), "{message}");
                assert!(message.contains("`HashFunc`"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
        let prefix = "o,a,f,http,1,1,";
        let row = format!("{prefix}x,{}", vec!["1"; AZURE_MINUTES - 3].join(","));
        let file = TempFile::new("bad-count.csv", &format!("{}\n{row}\n", azure_header()));
        match load_azure(&file.0) {
            Err(Error::Parse { line, column, message, .. }) => {
                assert_eq!((line, column), (2, prefix.len() + 1), "{message}");
                assert!(message.contains("minute 3"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn invalid_parameters_are_rejected_naming_the_parameter_and_value() {
        let cases = [
            (ArrivalProcess::Poisson { rate: -1.0 }, "rate = -1"),
            (ArrivalProcess::Poisson { rate: 0.0 }, "rate = 0"),
            (ArrivalProcess::Poisson { rate: f64::NAN }, "rate = NaN"),
            (ArrivalProcess::Poisson { rate: f64::INFINITY }, "rate = inf"),
            (ArrivalProcess::Gamma { rate: 1.0, cv: 0.0 }, "cv = 0"),
            (ArrivalProcess::Gamma { rate: 1.0, cv: -2.0 }, "cv = -2"),
            (ArrivalProcess::Uniform { rate: 1.0, spread: 1.5 }, "spread = 1.5"),
            (ArrivalProcess::Uniform { rate: 1.0, spread: -0.1 }, "spread = -0.1"),
            (ArrivalProcess::OnOff { rate_on: 1.0, on_s: 0.0, off_s: 1.0, rate_off: 0.0 }, "on_s = 0"),
            (ArrivalProcess::OnOff { rate_on: 1.0, on_s: 1.0, off_s: -1.0, rate_off: 0.0 }, "off_s = -1"),
            (ArrivalProcess::ClosedLoop { clients: 0, think_ms: 1.0, think: ThinkTime::Fixed }, "clients = 0"),
            (ArrivalProcess::ClosedLoop { clients: 1, think_ms: -1.0, think: ThinkTime::Fixed }, "think_ms = -1"),
            (azure(None, None, 0.0, 0), "minute_s = 0"),
            (azure(None, None, 60.0, 1440), "start_minute = 1440"),
            (azure(None, Some(-5.0), 60.0, 0), "target_rate = -5"),
            (trace(TraceSpec { minute_s: 1.0, ..TraceSpec::new("t.txt", TraceFormat::Timestamps) }), "minute_s = 1"),
        ];
        for (process, expected) in cases {
            let err = process.validate("suite s.toml, tenant t").expect_err(expected);
            let text = err.to_string();
            assert!(text.starts_with("suite s.toml, tenant t: ") && text.contains(expected), "{text}");
            assert!(process.schedule(1.0, 1, 0, &traces_dir(), "ctx").is_err(), "{expected}");
        }
        let err = ArrivalProcess::Poisson { rate: 1.0 }.schedule(-1.0, 0, 0, &traces_dir(), "t").expect_err("duration");
        assert!(err.to_string().contains("duration_s = -1"), "{err}");
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Tenant {
        arrival: ArrivalProcess,
    }

    fn parse(line: &str) -> std::result::Result<ArrivalProcess, String> {
        toml::from_str::<Tenant>(line).map(|t| t.arrival).map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_parses_from_a_one_line_inline_table() {
        let cases = [
            (r#"arrival = { kind = "poisson", rate = 200.0 }"#, ArrivalProcess::Poisson { rate: 200.0 }),
            (r#"arrival = { kind = "uniform", rate = 10.0 }"#, ArrivalProcess::Uniform { rate: 10.0, spread: 1.0 }),
            (r#"arrival = { kind = "gamma", rate = 10.0, cv = 3.0 }"#, ArrivalProcess::Gamma { rate: 10.0, cv: 3.0 }),
            (
                r#"arrival = { kind = "on_off", rate_on = 100.0, on_s = 1.0, off_s = 4.0 }"#,
                ArrivalProcess::OnOff { rate_on: 100.0, on_s: 1.0, off_s: 4.0, rate_off: 0.0 },
            ),
            (
                r#"arrival = { kind = "closed_loop", clients = 8, think_ms = 5.0 }"#,
                ArrivalProcess::ClosedLoop { clients: 8, think_ms: 5.0, think: ThinkTime::Exponential },
            ),
            (
                r#"arrival = { kind = "closed_loop", clients = 1, think_ms = 0.0, think = "fixed" }"#,
                ArrivalProcess::ClosedLoop { clients: 1, think_ms: 0.0, think: ThinkTime::Fixed },
            ),
            (
                r#"arrival = { kind = "trace", path = "x.csv", format = "azure_functions", target_rate = 50.0, minute_s = 1.0 }"#,
                azure(None, Some(50.0), 1.0, 0).with_path("x.csv"),
            ),
            (
                r#"arrival = { kind = "trace", path = "t.txt", format = "timestamps", unit = "ms" }"#,
                trace(TraceSpec { unit: TimeUnit::Ms, ..TraceSpec::new("t.txt", TraceFormat::Timestamps) }),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line).expect(line), expected, "{line}");
        }
    }

    impl ArrivalProcess {
        fn with_path(mut self, path: &str) -> Self {
            if let ArrivalProcess::Trace(spec) = &mut self {
                spec.path = path.into();
            }
            self
        }
    }

    #[test]
    fn an_unknown_kind_or_field_is_rejected_naming_it() {
        let err = parse(r#"arrival = { kind = "poison", rate = 1.0 }"#).expect_err("unknown kind");
        assert!(err.contains("poison"), "{err}");
        let err = parse(r#"arrival = { kind = "poisson", rate = 1.0, burst = 2 }"#).expect_err("unknown field");
        assert!(err.contains("burst"), "{err}");
        let err =
            parse(r#"arrival = { kind = "trace", path = "x", format = "timestamps", rate = 2 }"#).expect_err("field");
        assert!(err.contains("`rate`"), "{err}");
        let err = parse(r#"arrival = { kind = "trace", path = "x", format = "csv" }"#).expect_err("format");
        assert!(err.contains("csv"), "{err}");
        let err = parse(r#"arrival = { rate = 1.0 }"#).expect_err("no kind");
        assert!(err.contains("kind"), "{err}");
    }

    #[test]
    fn with_rate_scales_every_rate_by_one_factor() {
        let on_off = ArrivalProcess::OnOff { rate_on: 100.0, on_s: 1.0, off_s: 3.0, rate_off: 20.0 };
        let scaled = on_off.with_rate(80.0, "t").expect("scales");
        assert_eq!(scaled, ArrivalProcess::OnOff { rate_on: 200.0, on_s: 1.0, off_s: 3.0, rate_off: 40.0 });
        assert_eq!(scaled.nominal_rate(), Some(80.0));
        let gamma = ArrivalProcess::Gamma { rate: 1.0, cv: 2.0 }.with_rate(50.0, "t").expect("scales");
        assert_eq!(gamma, ArrivalProcess::Gamma { rate: 50.0, cv: 2.0 });
        let closed = ArrivalProcess::ClosedLoop { clients: 2, think_ms: 1.0, think: ThinkTime::Fixed };
        assert!(closed.with_rate(10.0, "t").unwrap_err().to_string().contains("closed loop"));
        assert!(gamma.with_rate(-1.0, "t").is_err());
    }

    #[test]
    fn arrival_processes_round_trip_through_toml_and_json() {
        let processes = [
            ArrivalProcess::OnOff { rate_on: 100.0, on_s: 1.0, off_s: 4.0, rate_off: 2.0 },
            ArrivalProcess::ClosedLoop { clients: 8, think_ms: 5.0, think: ThinkTime::Fixed },
            azure(Some(BURST), Some(50.0), 1.0, 3),
            trace(TraceSpec::new("t.txt", TraceFormat::Timestamps)),
        ];
        for arrival in processes {
            let tenant = Tenant { arrival };
            let text = toml::to_string(&tenant).expect("serialises");
            assert_eq!(toml::from_str::<Tenant>(&text).expect("parses back"), tenant, "{text}");
            let json = serde_json::to_string(&tenant).expect("serialises");
            assert_eq!(serde_json::from_str::<Tenant>(&json).expect("parses back"), tenant, "{json}");
        }
    }
}
