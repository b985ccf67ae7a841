//! One simulated run of a pipeline: batches arriving as a Poisson process, each element serving
//! the queued batches of its stages first come first served, and a policy that watches each
//! element's service times and responds when its slowdown changes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::path::Path;

use coloc_workloads::arrival::{ArrivalProcess, Schedule};

use super::{Episode, Operators, Split, slowdown_at};
use crate::error::{Error, Result};

/// How a pipeline responds to a slowed element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    /// The split balanced on solo times, never changed.
    Static,
    /// Least-loaded scheduling: stages keep their layers and move to the least loaded element.
    LeastLoaded,
    /// ODIN: boundary layers move between neighbouring stages.
    Odin,
    /// An upper bound for moving layers: told each slowdown as it starts and ends, re-splits at
    /// once to the best split for it (still pausing the elements it changes).
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
    /// Services of an element between two estimates of its slowdown (their mean).
    pub window: usize,
    /// A relative change of an element's estimated slowdown that calls for a response.
    pub threshold: f64,
    /// How long an element whose stages changed pauses (its stage graphs captured again), us.
    pub switch_us: f64,
}

impl Default for Params {
    fn default() -> Params {
        Params { window: 16, threshold: 0.10, switch_us: 2_000.0 }
    }
}

/// What one policy made of one run.
#[derive(Clone, Debug, PartialEq)]
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
    Arrival(usize),
    Done(usize),
}

struct State<'a> {
    op_us: &'a [f64],
    episodes: &'a [Episode],
    split: Split,
    element_of: Vec<usize>,
    /// Per stage: queued items with the time they were queued.
    queues: Vec<VecDeque<(u64, usize)>>,
    busy: Vec<Option<Service>>,
    paused_until: Vec<u64>,
    items: Vec<Item>,
    /// Per element: observed over solo time of its last services, and the count since its
    /// last estimate.
    ratios: Vec<VecDeque<f64>>,
    window: usize,
    fresh: Vec<usize>,
    estimate: Vec<f64>,
    /// The estimates the current split and placement were made for.
    basis: Vec<f64>,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
}

impl State<'_> {
    fn push(&mut self, at: u64, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, e)));
    }

    fn enqueue(&mut self, now: u64, item: usize) {
        let stage = self.split.stage_of(self.items[item].next_op);
        self.queues[stage].push_back((now, item));
        self.start(now, self.element_of[stage]);
    }

    /// Starts the element's oldest queued item among its stages, if it is idle.
    fn start(&mut self, now: u64, element: usize) {
        if self.busy[element].is_some() {
            return;
        }
        let stage = (0..self.queues.len())
            .filter(|&s| self.element_of[s] == element)
            .filter_map(|s| self.queues[s].front().map(|(t, _)| (*t, s)))
            .min()
            .map(|(_, s)| s);
        let Some(stage) = stage else { return };
        let (_, item) = self.queues[stage].pop_front().expect("non-empty");
        let begin = now.max(self.paused_until[element]);
        let end_op = self.split.range(stage).end;
        let solo_us: f64 = self.op_us[self.items[item].next_op..end_op].iter().sum();
        let slow = slowdown_at(self.episodes, element, begin as f64 / 1e9);
        self.busy[element] = Some(Service { item, end_op });
        let took = (solo_us * slow * 1e3).round() as u64;
        self.push(begin + took, Event::Done(element));
        // what the element's timing shows: this service against its solo time
        let ratios = &mut self.ratios[element];
        ratios.push_back(took as f64 / (solo_us * 1e3));
        if ratios.len() > self.window {
            ratios.pop_front();
        }
        self.fresh[element] += 1;
    }

    /// Re-queues every waiting item into the stage that now holds its next operator.
    fn requeue(&mut self) {
        let mut waiting: Vec<(u64, usize)> = self.queues.iter_mut().flat_map(|q| q.drain(..)).collect();
        waiting.sort();
        for (t, item) in waiting {
            let stage = self.split.stage_of(self.items[item].next_op);
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
    let PipelineSpec { ops, elements, duration_s, slo_ms, episodes, params, seed } = run.0;
    let params = &params;
    let batch_rate = rate_rps / ops.batch as f64;
    let process = ArrivalProcess::Poisson { rate: batch_rate };
    let arrivals = match process.schedule(duration_s, 1, seed, Path::new("."), "pipeline arrivals")? {
        Schedule::Open { arrivals_ns } => arrivals_ns,
        Schedule::Closed { .. } => unreachable!("a Poisson process is open"),
    };
    let split = run.balanced();
    let mut st = State {
        op_us: &ops.us,
        episodes,
        element_of: (0..elements).collect(),
        queues: vec![VecDeque::new(); elements],
        busy: (0..elements).map(|_| None).collect(),
        paused_until: vec![0; elements],
        items: arrivals.iter().map(|&a| Item { arrival_ns: a, next_op: 0 }).collect(),
        ratios: vec![VecDeque::new(); elements],
        window: params.window,
        fresh: vec![0; elements],
        estimate: vec![1.0; elements],
        basis: vec![1.0; elements],
        events: BinaryHeap::new(),
        seq: 0,
        split,
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
                let weights: Vec<f64> = st.element_of.iter().map(|&e| slowdown_at(episodes, e, at_s)).collect();
                let before = (st.split.clone(), st.element_of.clone());
                st.split = Split::balanced(&ops.us, &weights);
                if apply(&mut st, now, before, params) {
                    responses += 1;
                }
            }
            Event::Arrival(item) => st.enqueue(now, item),
            Event::Done(element) => {
                let Service { item, end_op } = st.busy[element].take().expect("busy");
                st.items[item].next_op = end_op;
                if end_op == ops.us.len() {
                    done_ns[item] = Some(now);
                } else {
                    st.enqueue(now, item);
                }
                let watches = matches!(policy, Policy::LeastLoaded | Policy::Odin);
                if watches && st.fresh[element] >= params.window {
                    let r = &st.ratios[element];
                    st.estimate[element] = r.iter().sum::<f64>() / r.len() as f64;
                    st.fresh[element] = 0;
                    if respond(&mut st, now, policy, params) {
                        responses += 1;
                    }
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
    let PipelineSpec { ops, elements, duration_s, slo_ms, episodes, params, .. } = *spec;
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
    let usable = params.window > 0
        && params.threshold > 0.0
        && params.threshold.is_finite()
        && (0.0..=duration_s * 1e6).contains(&params.switch_us);
    if !usable {
        let Params { window, threshold, switch_us } = params;
        return Err(Error::invalid(
            "window, threshold, switch_us",
            format!(
                "{window}, {threshold}, {switch_us}: give window >= 1, threshold > 0, 0 <= switch_us <= the duration in us"
            ),
        ));
    }
    Ok(())
}

/// Responds if any element's estimate moved past the threshold since the last response.
fn respond(st: &mut State, now: u64, policy: Policy, params: &Params) -> bool {
    let elements = st.estimate.len();
    // an element that runs no stage is judged by its load as the system sees it
    for e in 0..elements {
        if !st.element_of.contains(&e) {
            st.estimate[e] = slowdown_at(st.episodes, e, now as f64 / 1e9);
        }
    }
    let moved = (0..elements).any(|e| (st.estimate[e] / st.basis[e] - 1.0).abs() > params.threshold);
    if !moved {
        return false;
    }
    st.basis = st.estimate.clone();
    let before = (st.split.clone(), st.element_of.clone());
    match policy {
        Policy::Static | Policy::Oracle => return false,
        Policy::Odin => {
            let weights: Vec<f64> = st.element_of.iter().map(|&e| st.estimate[e]).collect();
            st.split.odin_moves(st.op_us, &weights);
        }
        Policy::LeastLoaded => {
            let stage_us = st.split.stage_us(st.op_us);
            let mut order: Vec<usize> = (0..stage_us.len()).collect();
            order.sort_by(|a, b| stage_us[*b].total_cmp(&stage_us[*a]).then(a.cmp(b)));
            let mut load = vec![0.0; elements];
            for s in order {
                let e = (0..elements)
                    .min_by(|&x, &y| {
                        (load[x] + stage_us[s] * st.estimate[x]).total_cmp(&(load[y] + stage_us[s] * st.estimate[y]))
                    })
                    .expect("elements");
                load[e] += stage_us[s] * st.estimate[e];
                st.element_of[s] = e;
            }
        }
    }
    apply(st, now, before, params)
}

/// Pauses the elements whose stages changed from `before` and re-queues the waiting batches;
/// false if nothing changed.
fn apply(st: &mut State, now: u64, before: (Split, Vec<usize>), params: &Params) -> bool {
    let elements = st.estimate.len();
    if (st.split.clone(), st.element_of.clone()) == before {
        return false;
    }
    let pause = now + (params.switch_us * 1e3) as u64;
    for s in 0..st.split.stages() {
        if st.split.range(s) != before.0.range(s) || st.element_of[s] != before.1[s] {
            let e = st.element_of[s];
            st.paused_until[e] = st.paused_until[e].max(pause);
        }
    }
    st.requeue();
    for e in 0..elements {
        st.start(now, e);
    }
    true
}

fn outcome(policy: Policy, batch: u32, st: &State, done_ns: &[Option<u64>], slo_ms: f64, responses: usize) -> Outcome {
    let arrived = done_ns.len();
    let mut latency_ms: Vec<f64> =
        st.items.iter().zip(done_ns).filter_map(|(i, d)| d.map(|d| (d - i.arrival_ns) as f64 / 1e6)).collect();
    latency_ms.sort_by(f64::total_cmp);
    let completed = latency_ms.len();
    // a quantile among all arrived batches, the missing ones last
    let quantile = |q: f64| {
        let rank = ((q * arrived as f64).ceil() as usize).max(1) - 1;
        latency_ms.get(rank).copied()
    };
    let last_ns = done_ns.iter().flatten().max().copied().unwrap_or(0).max(1);
    Outcome {
        policy,
        arrived,
        completed,
        served_rps: completed as f64 * batch as f64 / (last_ns as f64 / 1e9),
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        slo_attainment: latency_ms.iter().filter(|l| **l <= slo_ms).count() as f64 / arrived.max(1) as f64,
        responses,
        starts: st.split.starts().to_vec(),
        elements: st.element_of.clone(),
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
