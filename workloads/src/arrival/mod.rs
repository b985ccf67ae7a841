//! Arrival processes: when the requests of one tenant are issued.
//!
//! Every schedule is built in full, from a seed, before any timing starts: drawing random numbers
//! or reading a trace then never competes with the measured work, and the same arguments always
//! give the same schedule, so a run can be repeated exactly.
//!
//! Open processes (Poisson, uniform, gamma, on/off, traces) give arrival times. A closed loop
//! cannot: its arrivals depend on when earlier requests complete, so only its think times are
//! drawn in advance.
//!
//! Here: the processes and their schedules; `trace.rs`: what a trace replay names and how it
//! is scheduled; `files.rs`: the trace files' readers.

use std::path::Path;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, Gamma};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod files;
#[cfg(test)]
mod tests;
mod trace;

pub use files::{AzureFunction, AzureTrace, load_azure, load_timestamps};
pub use trace::{TimeUnit, TraceFormat, TraceSpec};

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

fn default_spread() -> f64 {
    1.0
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
