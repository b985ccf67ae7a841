//! One simulated run of a pipeline: batches arriving as a Poisson process, each element serving
//! the queued batches of its stages first come first served, and a policy that watches each
//! element's service times and responds when its slowdown changes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::path::Path;

use coloc_workloads::arrival::{ArrivalProcess, Schedule};
use serde::Serialize;

use super::control::{Controller, Layout};
use super::{Episode, MAX_SLOWDOWN, Operators, Split, slowdown_at};
use crate::error::{Error, Result};

/// How a pipeline responds to a slowed element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The split balanced on solo times, never changed.
    Static,
    /// Least-loaded scheduling: stages keep their layers and move to the least loaded element.
    #[serde(rename = "lls")]
    LeastLoaded,
    /// ODIN: boundary layers move between neighbouring stages.
    Odin,
    /// An upper bound for moving layers: told each slowdown as it starts and ends, re-splits at
    /// once to the best split for it (taking effect as a response does).
    Oracle,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Policy::Static, Policy::LeastLoaded, Policy::Odin, Policy::Oracle];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Static => "static",
            Policy::LeastLoaded => "lls",
            Policy::Odin => "odin",
            Policy::Oracle => "oracle",
        }
    }
}

/// How the responding policies watch and what a response costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Services of an element between two estimates of its slowdown (their median).
    pub window: usize,
    /// A relative change of an element's estimated slowdown that calls for a response.
    pub threshold: f64,
    /// How long after a response its layout takes effect, us: its stage graphs are captured
    /// meanwhile, and batches keep flowing through the layout before (as the measured
    /// pipeline does).
    pub switch_us: f64,
}

impl Default for Params {
    fn default() -> Params {
        Params { window: 16, threshold: 0.10, switch_us: 2_000.0 }
    }
}

impl Params {
    /// Checks the parameters of a run of `duration_s`, naming what is wrong.
    pub fn check(&self, duration_s: f64) -> Result<()> {
        let Params { window, threshold, switch_us } = *self;
        let usable =
            window > 0 && threshold > 0.0 && threshold.is_finite() && (0.0..=duration_s * 1e6).contains(&switch_us);
        if !usable {
            return Err(Error::invalid(
                "window, threshold, switch_us",
                format!(
                    "{window}, {threshold}, {switch_us}: give window >= 1, threshold > 0, 0 <= switch_us <= the duration in us"
                ),
            ));
        }
        Ok(())
    }
}

/// What one policy made of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub policy: Policy,
    /// Batches that arrived in the window, and those of them that completed.
    pub arrived: usize,
    pub completed: usize,
    /// Requests served per second: completed batches x batch size over the time to the last.
    pub served_rps: f64,
    /// Latency from a batch's arrival to its last stage's end; None past the completed share.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Share of arrived batches completed within the SLO.
    pub slo_attainment: f64,
    /// Times the policy changed the split or the placement.
    pub responses: usize,
    /// At the end: each stage's first operator (after the first stage) and element.
    pub starts: Vec<usize>,
    pub elements: Vec<usize>,
}

/// A batch in the pipeline.
struct Item {
    arrival_ns: u64,
    /// The next operator it needs.
    next_op: usize,
}

/// An element's service in progress.
struct Service {
    item: usize,
    end_op: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// An episode starts or ends (only the oracle is told).
    Boundary,
    /// A response's layout takes effect.
    Apply,
    Arrival(usize),
    Done(usize),
}

struct State<'a> {
    op_us: &'a [f64],
    episodes: &'a [Episode],
    /// Per element: its factor without interference ([`PipelineSpec::contention`]).
    contention: Vec<f64>,
    control: Controller,
    /// Per stage: queued items with the time they were queued.
    queues: Vec<VecDeque<(u64, usize)>>,
    busy: Vec<Option<Service>>,
    /// The layout batches run: the policy's, once its last response took effect.
    layout: Layout,
    /// When the policy's last response takes effect, while it has not; the policy watches no
    /// service meanwhile (they run the layout it replaced).
    pending_until: Option<u64>,
    items: Vec<Item>,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
}

impl State<'_> {
    fn push(&mut self, at: u64, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, e)));
    }

    fn enqueue(&mut self, now: u64, item: usize) {
        let stage = self.layout.split.stage_of(self.items[item].next_op);
        self.queues[stage].push_back((now, item));
        self.start(now, self.layout.element_of[stage]);
    }

    /// Starts the element's oldest queued item among its stages, if it is idle.
    fn start(&mut self, now: u64, element: usize) {
        if self.busy[element].is_some() {
            return;
        }
        let stage = (0..self.queues.len())
            .filter(|&s| self.layout.element_of[s] == element)
            .filter_map(|s| self.queues[s].front().map(|(t, _)| (*t, s)))
            .min()
            .map(|(_, s)| s);
        let Some(stage) = stage else { return };
        let (_, item) = self.queues[stage].pop_front().expect("non-empty");
        let begin = now;
        let end_op = self.layout.split.range(stage).end;
        let solo_us: f64 = self.op_us[self.items[item].next_op..end_op].iter().sum();
        let slow = self.contention[element] * slowdown_at(self.episodes, element, begin as f64 / 1e9);
        self.busy[element] = Some(Service { item, end_op });
        let took = (solo_us * slow * 1e3).round() as u64;
        self.push(begin + took, Event::Done(element));
        // what the element's timing shows: this service against its solo time
        if self.pending_until.is_none() {
            self.control.observe(element, took as f64 / (solo_us * 1e3));
        }
    }

    /// Re-queues every waiting item into the stage that now holds its next operator.
    fn requeue(&mut self) {
        let mut waiting: Vec<(u64, usize)> = self.queues.iter_mut().flat_map(|q| q.drain(..)).collect();
        waiting.sort();
        for (t, item) in waiting {
            let stage = self.layout.split.stage_of(self.items[item].next_op);
            self.queues[stage].push_back((t, item));
        }
    }
}

/// What a pipeline run is given; [`PipelineSpec::check`] turns it into a [`Pipeline`], the only
/// way in to [`simulate`] and [`goodput`].
#[derive(Clone, Copy, Debug)]
pub struct PipelineSpec<'a> {
    pub ops: &'a Operators,
    /// Processing elements, one stage each to start with.
    pub elements: usize,
    pub duration_s: f64,
    /// A batch's latency objective, from its arrival to its last stage's end.
    pub slo_ms: f64,
    pub episodes: &'a [Episode],
    /// Per element: what it runs at without interference, over its solo time, because its
    /// neighbours are busy (measured 1.04-1.25x on an H100 for three green contexts); the
    /// watching policies expect it (their basis). `None`: solo time, 1.
    pub contention: Option<&'a [f64]>,
    pub params: Params,
    /// Of the arrivals.
    pub seed: u64,
}

impl<'a> PipelineSpec<'a> {
    /// Checks every input, naming what is wrong.
    pub fn check(self) -> Result<Pipeline<'a>> {
        validate(&self)?;
        Ok(Pipeline(self))
    }
}

/// A [`PipelineSpec`] whose inputs were checked.
#[derive(Clone, Copy, Debug)]
pub struct Pipeline<'a>(PipelineSpec<'a>);

impl<'a> Pipeline<'a> {
    pub fn spec(&self) -> &PipelineSpec<'a> {
        &self.0
    }

    /// The split that minimises the slowest stage on solo times: where every policy starts.
    pub fn balanced(&self) -> Split {
        Split::balanced(&self.0.ops.us, &vec![1.0; self.0.elements])
    }

    /// Requests per second the balanced split serves on unslowed elements: a batch per slowest
    /// stage time.
    pub fn capacity_rps(&self) -> f64 {
        let slowest = self.balanced().stage_us(&self.0.ops.us).into_iter().fold(0.0, f64::max);
        self.0.ops.batch as f64 / (slowest * 1e-6)
    }
}

/// Simulates the pipeline's duration of batches arriving at `rate_rps` requests per second,
/// slowed as its episodes say, with `policy` responding.
pub fn simulate(run: &Pipeline, policy: Policy, rate_rps: f64) -> Result<Outcome> {
    let PipelineSpec { ops, elements, duration_s, slo_ms, episodes, contention, params, seed } = run.0;
    let contention = contention.map_or_else(|| vec![1.0; elements], <[f64]>::to_vec);
    let params = &params;
    let batch_rate = rate_rps / ops.batch as f64;
    let process = ArrivalProcess::Poisson { rate: batch_rate };
    let arrivals = match process.schedule(duration_s, 1, seed, Path::new("."), "pipeline arrivals")? {
        Schedule::Open { arrivals_ns } => arrivals_ns,
        Schedule::Closed { .. } => unreachable!("a Poisson process is open"),
    };
    let control = Controller::new(policy, *params, &ops.us, &contention);
    let mut st = State {
        op_us: &ops.us,
        episodes,
        layout: control.layout().clone(),
        control,
        contention: contention.clone(),
        queues: vec![VecDeque::new(); elements],
        busy: (0..elements).map(|_| None).collect(),
        pending_until: None,
        items: arrivals.iter().map(|&a| Item { arrival_ns: a, next_op: 0 }).collect(),
        events: BinaryHeap::new(),
        seq: 0,
    };
    for (i, &a) in arrivals.iter().enumerate() {
        st.push(a, Event::Arrival(i));
    }
    if policy == Policy::Oracle {
        // rounded up, so that at the event the episode has started (or ended) for
        // `slowdown_at` too, which the services read
        for e in episodes {
            st.push((e.from_s * 1e9).ceil() as u64, Event::Boundary);
            st.push((e.to_s * 1e9).ceil() as u64, Event::Boundary);
        }
    }
    // batches still queued this long after the window are not coming back
    let horizon = ((duration_s * 3.0 + 1.0) * 1e9) as u64;
    let mut done_ns: Vec<Option<u64>> = vec![None; arrivals.len()];
    let mut responses = 0;
    while let Some(Reverse((now, _, event))) = st.events.pop() {
        if now > horizon {
            break;
        }
        match event {
            Event::Boundary => {
                let at_s = now as f64 / 1e9;
                let contention = &st.contention;
                if st.control.resplit(|e| contention[e] * slowdown_at(episodes, e, at_s)).is_some() {
                    respond(&mut st, now, params);
                    responses += 1;
                }
            }
            Event::Apply if st.pending_until == Some(now) => apply(&mut st, now),
            Event::Apply => {} // a later response's takes effect instead
            Event::Arrival(item) => st.enqueue(now, item),
            Event::Done(element) => {
                let Service { item, end_op } = st.busy[element].take().expect("busy");
                st.items[item].next_op = end_op;
                if end_op == ops.us.len() {
                    done_ns[item] = Some(now);
                } else {
                    st.enqueue(now, item);
                }
                // an element that runs no stage is judged by its load as the system sees it
                let at_s = now as f64 / 1e9;
                let watching = st.pending_until.is_none();
                let contention = &st.contention;
                let idle = |e: usize| contention[e] * slowdown_at(episodes, e, at_s);
                if watching && st.control.after_service(element, idle).is_some() {
                    respond(&mut st, now, params);
                    responses += 1;
                }
                st.start(now, element);
            }
        }
    }
    Ok(outcome(policy, ops.batch, &st, &done_ns, slo_ms, responses))
}

/// The longest run simulated, s: long enough for any serving question, short enough that its
/// times in nanoseconds cannot overflow.
const MAX_DURATION_S: f64 = 3_600.0;

/// Checks what a run is given, naming what is wrong.
fn validate(spec: &PipelineSpec) -> Result<()> {
    let PipelineSpec { ops, elements, duration_s, slo_ms, episodes, contention, params, .. } = *spec;
    if elements == 0 || elements > ops.us.len() {
        return Err(Error::invalid(
            "elements",
            format!("{elements} elements for {} operators: give 1 to {}", ops.us.len(), ops.us.len()),
        ));
    }
    if let Some(e) = episodes.iter().find(|e| e.element >= elements) {
        return Err(Error::invalid(
            format!("interference episode `{e}`"),
            format!("element {} of {elements} elements (they count from 0)", e.element),
        ));
    }
    if !(duration_s > 0.0 && duration_s <= MAX_DURATION_S) {
        return Err(Error::invalid(
            "duration_s",
            format!("{duration_s} s: give more than 0, at most {MAX_DURATION_S}"),
        ));
    }
    if !(slo_ms > 0.0 && slo_ms.is_finite()) {
        return Err(Error::invalid("slo_ms", format!("{slo_ms} ms: give a positive number")));
    }
    if let Some(c) = contention {
        let usable = c.len() == elements && c.iter().all(|&x| x > 0.0 && x <= MAX_SLOWDOWN);
        if !usable {
            return Err(Error::invalid(
                "contention",
                format!("{c:?}: give one factor per element ({elements}), each above 0 and at most {MAX_SLOWDOWN}"),
            ));
        }
    }
    params.check(duration_s)?;
    Ok(())
}

/// A response at `now`: its layout takes effect `switch_us` later.
fn respond(st: &mut State, now: u64, params: &Params) {
    let at = now + (params.switch_us * 1e3).round() as u64;
    st.pending_until = Some(at);
    st.push(at, Event::Apply);
}

/// The policy's layout takes effect: waiting batches re-queued into the stages that now hold
/// their next operators, idle elements started.
fn apply(st: &mut State, now: u64) {
    st.layout = st.control.layout().clone();
    st.pending_until = None;
    st.requeue();
    for e in 0..st.busy.len() {
        st.start(now, e);
    }
}

fn outcome(policy: Policy, batch: u32, st: &State, done_ns: &[Option<u64>], slo_ms: f64, responses: usize) -> Outcome {
    let latency_ms: Vec<Option<f64>> =
        st.items.iter().zip(done_ns).map(|(i, d)| d.map(|d| (d - i.arrival_ns) as f64 / 1e6)).collect();
    let last_s = done_ns.iter().flatten().max().copied().unwrap_or(0).max(1) as f64 / 1e9;
    Outcome::of(policy, batch as usize, &latency_ms, last_s, slo_ms, responses, st.control.layout())
}

impl Outcome {
    /// From each arrived batch's latency (None: it did not complete), the time of the last
    /// completion from the start, s, and the layout at the end.
    pub fn of(
        policy: Policy,
        batch: usize,
        latency_ms: &[Option<f64>],
        last_done_s: f64,
        slo_ms: f64,
        responses: usize,
        layout: &Layout,
    ) -> Outcome {
        let arrived = latency_ms.len();
        let mut done: Vec<f64> = latency_ms.iter().flatten().copied().collect();
        done.sort_by(f64::total_cmp);
        let completed = done.len();
        // a quantile among all arrived batches, the missing ones last
        let quantile = |q: f64| {
            let rank = ((q * arrived as f64).ceil() as usize).max(1) - 1;
            done.get(rank).copied()
        };
        Outcome {
            policy,
            arrived,
            completed,
            served_rps: completed as f64 * batch as f64 / last_done_s.max(1e-9),
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            slo_attainment: done.iter().filter(|l| **l <= slo_ms).count() as f64 / arrived.max(1) as f64,
            responses,
            starts: layout.split.starts().to_vec(),
            elements: layout.element_of.clone(),
        }
    }
}

/// The share of batches a rate must complete within the SLO to count as held.
pub const HELD: f64 = 0.99;

/// The highest request rate at which `policy` completes [`HELD`] of the batches within the SLO,
/// by bisection between 0 and the balanced pipeline's capacity without interference, to 1% of
/// that capacity; 0 where even the lowest rate tried misses.
pub fn goodput(run: &Pipeline, policy: Policy) -> Result<f64> {
    let capacity = run.capacity_rps();
    let (mut held, mut missed) = (0.0, capacity);
    while missed - held > capacity * 0.01 {
        let rate = (held + missed) / 2.0;
        if simulate(run, policy, rate)?.slo_attainment >= HELD {
            held = rate;
        } else {
            missed = rate;
        }
    }
    Ok(held)
}
