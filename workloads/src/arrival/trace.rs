//! Trace replay: what a `trace` arrival process names (a timestamps file or one function of
//! the Azure Functions 2019 dataset) and how its schedule is built.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{AZURE_MINUTES, AzureFunction, PiecewisePoisson, collect_open, load_azure, load_timestamps, positive};
use crate::error::{Error, Result};

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
    /// [`MIN_HASH_PREFIX`](super::MIN_HASH_PREFIX) characters is enough. Default: the function with the most invocations
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

    pub(super) fn validate(&self, context: &str) -> Result<()> {
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

    pub(super) fn schedule(
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
