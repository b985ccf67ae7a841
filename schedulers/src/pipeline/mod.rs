//! ODIN (Soomro, Papadopoulou, Pericàs, Euro-Par 2023) on a GPU, in simulation: a model's
//! operators split into contiguous pipeline stages, one stage per processing element (a green
//! context of equal SMs), each batch flowing through the stages in order. A co-located task
//! that lands on one element slows its stage; the pipeline's throughput is its slowest stage's.
//!
//! Three ways to respond, detected from the stages' own timings (no predictor; an element that
//! runs no stage has no timings, and least-loaded scheduling judges it by its true load, as an
//! operating system sees a co-runner):
//! - static: the split balanced on solo times, never changed;
//! - least-loaded scheduling (LLS, ODIN's baseline): stages keep their layers, and each is
//!   placed on the element that is least loaded, given each element's observed slowdown;
//! - ODIN: layers move between neighbouring stages, away from the slowed stage, until the
//!   slowest stage (at the observed slowdowns) stops improving;
//! - an oracle, the bound on moving layers: told each slowdown as it starts and ends, it
//!   re-splits at once to the best split for it.
//!
//! Operator times are measured solo profiles at the elements' share ([`Operators`]); a slowdown
//! is a factor on an element's time over an interval ([`Episode`]). What is not modelled: a
//! slowdown that depends on which layers a stage holds (one factor per element), and batching
//! (each item is a formed batch, arriving as a Poisson process).

mod control;
pub mod measured;
mod run;
mod split;

use std::str::FromStr;

use coloc_dataset::solo_rows::SoloOpRow;
use coloc_workloads::scenario::SoloShare;

use crate::error::{Error, Result};

pub use control::{Controller, Layout};
pub use run::{HELD, Outcome, Params, Pipeline, PipelineSpec, Policy, goodput, simulate};
pub use split::Split;

/// A model's operators in graph order, each with its solo GPU time on one processing element.
#[derive(Clone, Debug, PartialEq)]
pub struct Operators {
    pub model: String,
    pub batch: u32,
    pub share: SoloShare,
    pub us: Vec<f64>,
}

impl Operators {
    /// The operators of (`model`, `batch`) at `share` from a dataset's `solo_ops` rows.
    pub fn from_rows(rows: &[SoloOpRow], model: &str, batch: u32, share: SoloShare) -> Result<Operators> {
        let mut ops: Vec<&SoloOpRow> =
            rows.iter().filter(|o| o.model == model && o.batch == batch && o.share == share).collect();
        let what = format!("solo operators of {model} b{batch} at {}", share.label());
        if ops.is_empty() {
            let profiled: std::collections::BTreeSet<String> = rows
                .iter()
                .filter(|o| o.model == model)
                .map(|o| format!("b{} at {}", o.batch, o.share.label()))
                .collect();
            let reason = if profiled.is_empty() {
                "the dataset has no solo operators of this model".to_string()
            } else {
                format!("none profiled; this model has: {}", profiled.into_iter().collect::<Vec<_>>().join(", "))
            };
            return Err(Error::invalid(what, reason));
        }
        ops.sort_by_key(|o| o.op);
        let us = ops
            .iter()
            .map(|o| {
                o.time_us.ok_or_else(|| Error::invalid(&what, format!("operator {} ({}) was not timed", o.op, o.layer)))
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok(Operators { model: model.into(), batch, share, us })
    }
}

/// An element slowed by `slowdown` (x its solo time) from `from_s` to `to_s`, written
/// `ELEMENT:FROM-TO:SLOWDOWN` (seconds), e.g. `1:2-6:2.09`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Episode {
    pub element: usize,
    pub from_s: f64,
    pub to_s: f64,
    pub slowdown: f64,
}

impl FromStr for Episode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Episode> {
        let bad = |why: &str| {
            Error::invalid(
                format!("interference episode `{s}`"),
                format!("{why}; write ELEMENT:FROM-TO:SLOWDOWN, e.g. 1:2-6:2.09"),
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        let [element, span, slowdown] = parts[..] else { return Err(bad("three fields separated by `:`")) };
        let element = element.trim().parse().map_err(|_| bad("the element is not a number"))?;
        let (from_s, to_s) = interval(span, &bad)?;
        let slowdown: f64 = slowdown.trim().parse().map_err(|_| bad("the slowdown is not a number"))?;
        if !(slowdown > 0.0 && slowdown <= MAX_SLOWDOWN) {
            return Err(bad("the slowdown must be a positive factor, at most 1000"));
        }
        Ok(Episode { element, from_s, to_s, slowdown })
    }
}

/// `FROM-TO` in seconds, 0 <= FROM < TO; `bad` words the error.
fn interval(span: &str, bad: &dyn Fn(&str) -> Error) -> Result<(f64, f64)> {
    let (from, to) = span.split_once('-').ok_or_else(|| bad("the interval is not FROM-TO"))?;
    let from_s: f64 = from.trim().parse().map_err(|_| bad("FROM is not a number"))?;
    let to_s: f64 = to.trim().parse().map_err(|_| bad("TO is not a number"))?;
    if !(from_s >= 0.0 && to_s > from_s && to_s.is_finite()) {
        return Err(bad("the interval must have 0 <= FROM < TO"));
    }
    Ok((from_s, to_s))
}

impl std::fmt::Display for Episode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}-{}:{}", self.element, self.from_s, self.to_s, self.slowdown)
    }
}

/// The largest slowdown an episode may give: beyond it an element has stopped, which a
/// pipeline cannot be scored on.
pub const MAX_SLOWDOWN: f64 = 1_000.0;

/// The slowdown of `element` at `t_s`: the product of the episodes covering it.
pub fn slowdown_at(episodes: &[Episode], element: usize, t_s: f64) -> f64 {
    episodes.iter().filter(|e| e.element == element && e.from_s <= t_s && t_s < e.to_s).map(|e| e.slowdown).product()
}
