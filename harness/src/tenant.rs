//! One tenant serving requests: arrivals from a schedule built before the run (or closed-loop
//! clients), admitted into the batching state machine ([`coloc_workloads::batcher`]), one
//! batch in flight at a time, each batch a CUDA-graph replay of the model at the batch's bucket
//! size, with fresh inputs from the input seed. The host notices completions by polling an
//! event; the batch's GPU times come from its stamps, mapped onto the host clock after the run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use coloc_dataset::rows::LaunchKind;
use coloc_kernels::gpu::{Event, KernelLibrary, PinnedBuffer, Stream, StreamLibraries};
use coloc_kernels::ops::LaunchEnv;
use coloc_kernels::timing::span_of;
use coloc_workloads::batcher::{BatchPolicy, Batcher, Dispatch, Queued};
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::clock::mono_ns;
use crate::control::Quorum;
use crate::error::{Error, Result};
use crate::gate::ClockworkGate;
use crate::headroom::HeadroomGate;
use crate::model::{ModelInstance, stamps_from};
use crate::record::{RawBatch, RawTenant, launch_ids};
use crate::space_time::SpaceTimeGate;

/// Where requests come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Arrivals {
    /// Arrival times, ns from the start of the run (warm-up included), non-decreasing.
    Open(Vec<i64>),
    /// Clients that each send, wait for completion, think, and send again. They stop sending
    /// at `stop_ns` (from the start of the run) once every closed loop of the run has its
    /// minimum of queries, and at `cap_ns` in any case.
    Closed { think_ns: Vec<Vec<u64>>, stop_ns: i64, cap_ns: i64 },
}

/// Everything needed to run one tenant, also in another process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantPlan {
    pub index: u16,
    pub name: String,
    pub model: ModelSpec,
    pub seq: Option<usize>,
    pub context: Option<usize>,
    pub policy: BatchPolicy,
    pub arrivals: Arrivals,
    pub warmup_ns: i64,
    /// From the start of the run: requests still queued then are left unserved.
    pub deadline_ns: i64,
    /// Keep the launches of batches formed inside these windows (ns from the start of the
    /// run). Every tenant of a run has the same windows, so every overlap inside them is seen.
    pub sample_windows: Vec<(i64, i64)>,
    pub weight_seed: u64,
    pub input_seed: u64,
    pub slo_ms: f64,
    /// Measured completions after which a closed loop may stop.
    pub min_queries: usize,
    /// (batch size, solo GPU time in us at the tenant's share) of every profiled size up to its
    /// largest batch, ascending: what a runtime scheduler knows of its model.
    pub profile: Vec<(usize, f64)>,
}

impl TenantPlan {
    pub fn graph(&self, batch: usize) -> Result<ModelGraph> {
        Ok(ModelGraph::build(&self.model, &BuildOptions { batch, seq: self.seq, context: self.context })?)
    }
}

/// A runtime scheduler the tenants of a run share.
#[derive(Clone, Copy)]
pub enum Gate<'g> {
    /// Clockwork holds every tenant's queue.
    Clockwork(&'g ClockworkGate),
    /// Least headroom: each tenant keeps its queue, and asks before a batch launches.
    Headroom(&'g HeadroomGate),
    /// Space-time: each tenant keeps its queue, and asks before a batch launches.
    SpaceTime(&'g SpaceTimeGate),
}

/// A gate a tenant's own batcher asks before its due batch launches.
#[derive(Clone, Copy)]
enum Admission<'g> {
    Headroom(&'g HeadroomGate),
    SpaceTime(&'g SpaceTimeGate),
}

/// A tenant's queue: its own, its own with a gate to pass, or its lane of a scheduler that
/// holds every tenant's queue.
enum Queue<'g> {
    Own(Batcher),
    Gated { batcher: Batcher, gate: Admission<'g>, lane: usize },
    Shared { gate: &'g ClockworkGate, lane: usize },
}

impl Queue<'_> {
    fn admit(&mut self, q: Queued) {
        match self {
            Queue::Own(b) | Queue::Gated { batcher: b, .. } => b.admit(q),
            Queue::Shared { gate, lane } => gate.admit(*lane, q),
        }
    }

    /// The batch to start now, if one is due (and, gated, let go).
    fn poll(&mut self, now: i64, exhausted: bool) -> Option<Dispatch> {
        match self {
            Queue::Own(b) => b.poll(now, exhausted),
            Queue::Gated { batcher, gate, lane } => {
                let trigger = batcher.due(now, exhausted)?;
                let n = batcher.waiting().min(batcher.max_batch());
                let oldest = batcher.oldest_ns()?;
                let bucket = batcher.policy().bucket_for(n);
                let go = match gate {
                    Admission::Headroom(g) => g.admits(*lane, now, bucket, oldest),
                    Admission::SpaceTime(g) => g.admits(*lane, bucket),
                };
                go.then(|| batcher.take(n, trigger))
            }
            Queue::Shared { gate, lane } => gate.next(*lane, now),
        }
    }

    /// The tenant's batch in flight has been noticed done at `noticed`, after `gpu_ns` on the
    /// GPU.
    fn done(&mut self, noticed: i64, gpu_ns: i64) {
        match self {
            Queue::Own(_) => {}
            Queue::Gated { gate: Admission::Headroom(g), lane, .. } => g.done(*lane),
            Queue::Gated { gate: Admission::SpaceTime(g), lane, .. } => g.done(*lane, gpu_ns),
            Queue::Shared { gate, lane } => gate.done(*lane, noticed),
        }
    }

    fn waiting(&self) -> usize {
        match self {
            Queue::Own(b) | Queue::Gated { batcher: b, .. } => b.waiting(),
            Queue::Shared { gate, lane } => gate.waiting(*lane),
        }
    }

    /// Requests never served: dropped by a scheduler or still waiting. The tenant leaves its
    /// gate, holding nothing back.
    fn into_unserved(self) -> Vec<Queued> {
        match self {
            Queue::Gated { batcher, gate: Admission::SpaceTime(g), lane } => {
                g.leave(lane);
                batcher.into_waiting()
            }
            Queue::Own(b) | Queue::Gated { batcher: b, .. } => b.into_waiting(),
            Queue::Shared { gate, lane } => gate.unserved(lane),
        }
    }
}

struct InFlight {
    raw: RawBatch,
    instance: usize,
}

/// A tenant made ready on a stream: graphs captured, buffers filled.
pub struct TenantRunner {
    plan: TenantPlan,
    lib: Arc<KernelLibrary>,
    stream: Arc<Stream>,
    _libs: StreamLibraries,
    instances: Vec<(usize, ModelInstance)>,
    readback: PinnedBuffer,
    done: Event,
    pub granted_sms: u32,
}

impl TenantRunner {
    /// Builds, allocates, fills and captures the model at every bucket size on `stream`.
    pub fn prepare(
        lib: &Arc<KernelLibrary>,
        stream: Arc<Stream>,
        plan: TenantPlan,
        granted_sms: u32,
    ) -> Result<TenantRunner> {
        let device = lib.device().clone();
        let libs = StreamLibraries::new(&stream)?;
        let mut instances = Vec::new();
        let mut readback_bytes = 16;
        for &bucket in &plan.policy.buckets {
            let mut inst = ModelInstance::allocate(&device, plan.graph(bucket)?)?;
            readback_bytes = readback_bytes.max(inst.stamp_bytes());
            let env = LaunchEnv { lib, stream: &stream, libs: Some(&libs), bracket_library_calls: false };
            inst.initialize(&env, plan.weight_seed, plan.input_seed)?;
            inst.capture(&env)?;
            // one replay outside the run: first-launch costs stay out of the measurements
            inst.launch(&stream)?;
            instances.push((bucket, inst));
        }
        stream.synchronize()?;
        let readback = PinnedBuffer::alloc(&device, readback_bytes)?;
        let done = Event::new(stream.context())?;
        Ok(TenantRunner { plan, lib: lib.clone(), stream, _libs: libs, instances, readback, done, granted_sms })
    }

    pub fn plan(&self) -> &TenantPlan {
        &self.plan
    }

    /// Serves the schedule from `run_start` (host clock) until every request is done or the
    /// deadline passes; its batches go when its own batcher says, or when `gate` (shared with
    /// the run's other tenants) does.
    pub fn run(&mut self, run_start: i64, quorum: &dyn Quorum, gate: Option<Gate>) -> Result<RawTenant> {
        let window = run_start + self.plan.warmup_ns;
        let mut raw = RawTenant {
            tenant: self.plan.index,
            slo_ms: self.plan.slo_ms,
            launches: self.instances.iter().map(|(b, i)| (*b, launch_ids(i.launches()))).collect(),
            ..RawTenant::default()
        };
        let lane = usize::from(self.plan.index);
        let mut batcher = match gate {
            Some(Gate::Clockwork(gate)) => Queue::Shared { gate, lane },
            Some(Gate::Headroom(g)) => {
                Queue::Gated { batcher: Batcher::new(self.plan.policy.clone()), gate: Admission::Headroom(g), lane }
            }
            Some(Gate::SpaceTime(g)) => {
                Queue::Gated { batcher: Batcher::new(self.plan.policy.clone()), gate: Admission::SpaceTime(g), lane }
            }
            None => Queue::Own(Batcher::new(self.plan.policy.clone())),
        };
        let mut next_open = 0usize;
        let mut clients: BinaryHeap<Reverse<(i64, u32)>> = BinaryHeap::new();
        let mut think_index: Vec<usize> = Vec::new();
        let closed = matches!(self.plan.arrivals, Arrivals::Closed { .. });
        if let Arrivals::Closed { think_ns, .. } = &self.plan.arrivals {
            for (c, thinks) in think_ns.iter().enumerate() {
                clients.push(Reverse((run_start + thinks.first().copied().unwrap_or(0) as i64, c as u32)));
            }
            think_index = vec![1; think_ns.len()];
        }
        let mut sending = true;
        let mut measured_done = 0usize;
        let mut reported = false;
        let mut deadline = run_start + self.plan.deadline_ns;
        let mut next_request = 0u32;
        let mut next_batch = 0u32;
        let mut inflight: Option<InFlight> = None;
        loop {
            if crate::control::interrupted() {
                return Err(Error::Interrupted);
            }
            let now = mono_ns();
            let exhausted = match &self.plan.arrivals {
                Arrivals::Open(times) => {
                    while next_open < times.len() && run_start + times[next_open] <= now {
                        batcher.admit(Queued {
                            request: next_request,
                            arrival_ns: run_start + times[next_open],
                            client: 0,
                        });
                        next_request += 1;
                        next_open += 1;
                    }
                    next_open == times.len()
                }
                Arrivals::Closed { stop_ns, cap_ns, .. } => {
                    if sending && (now >= run_start + cap_ns || (now >= run_start + stop_ns && quorum.reached_by_all()))
                    {
                        sending = false;
                        raw.stopped_sending_host = Some(now);
                        // what is in flight and queued still runs to completion
                        deadline = deadline.max(now + (self.plan.deadline_ns - stop_ns));
                    }
                    while let Some(Reverse((t, c))) = clients.peek().copied() {
                        if t > now || !sending {
                            break;
                        }
                        clients.pop();
                        batcher.admit(Queued { request: next_request, arrival_ns: t, client: c });
                        next_request += 1;
                    }
                    !sending
                }
            };
            if let Some(f) = &inflight {
                if self.done.is_complete()? {
                    let f = inflight.take().expect("in flight");
                    let noticed = mono_ns();
                    let batch = self.finish(f, noticed, run_start)?;
                    batcher.done(noticed, batch.end_gpu.saturating_sub(batch.start_gpu) as i64);
                    measured_done += batch.requests.iter().filter(|q| q.arrival_ns >= window).count();
                    if closed && !reported && measured_done >= self.plan.min_queries {
                        reported = true;
                        quorum.reached(self.plan.index);
                    }
                    if let Arrivals::Closed { think_ns, .. } = &self.plan.arrivals {
                        // each client of the batch thinks, then sends its next request
                        for q in &batch.requests {
                            let c = q.client as usize;
                            let think = think_ns[c][think_index[c] % think_ns[c].len()] as i64;
                            think_index[c] += 1;
                            clients.push(Reverse((noticed + think, q.client)));
                        }
                    }
                    raw.batches.push(batch);
                    continue;
                } else if now > deadline + 5_000_000_000 {
                    return Err(Error::invalid(
                        &self.plan.name,
                        format!("batch {} did not complete within 5 s after the deadline", f.raw.batch),
                    ));
                }
            }
            if inflight.is_none() {
                if let Some(d) = batcher.poll(now, exhausted) {
                    let instance = self.instances.iter().position(|(b, _)| *b == d.bucket).expect("a graph per bucket");
                    let batch = next_batch;
                    next_batch += 1;
                    let formed = mono_ns();
                    let (_, inst) = &self.instances[instance];
                    let env =
                        LaunchEnv { lib: &self.lib, stream: &self.stream, libs: None, bracket_library_calls: false };
                    inst.refill_inputs(&env, self.plan.input_seed ^ ((batch as u64) << 20))?;
                    inst.launch(&self.stream)?;
                    inst.queue_stamp_readback(&self.stream, &self.readback, 0)?;
                    self.done.record(&self.stream)?;
                    let raw = RawBatch {
                        batch,
                        bucket: d.bucket,
                        trigger: d.trigger,
                        requests: d.requests,
                        formed_host: formed,
                        noticed_host: 0,
                        start_gpu: 0,
                        end_gpu: 0,
                        launches: Vec::new(),
                    };
                    inflight = Some(InFlight { raw, instance });
                    continue;
                }
            }
            if inflight.is_none() && exhausted && batcher.waiting() == 0 {
                break;
            }
            if inflight.is_none() && now > deadline {
                break;
            }
            std::hint::spin_loop();
        }
        // Requests still queued, and open-loop arrivals never admitted: never served.
        raw.unserved = batcher.into_unserved();
        if let Arrivals::Open(times) = &self.plan.arrivals {
            for (k, t) in times.iter().enumerate().skip(next_open) {
                let request = next_request + (k - next_open) as u32;
                raw.unserved.push(Queued { request, arrival_ns: run_start + t, client: 0 });
            }
        }
        Ok(raw)
    }

    /// The batch with its stamps read, once the host has seen it complete at `noticed`.
    fn finish(&self, f: InFlight, noticed: i64, run_start: i64) -> Result<RawBatch> {
        let (_, inst) = &self.instances[f.instance];
        let stamps = stamps_from(&self.readback, 0, inst.launches().len());
        let span = span_of(&stamps);
        let (Some(start), Some(end)) = (span.start_ns, span.end_ns) else {
            return Err(Error::invalid(&self.plan.name, format!("batch {} has no timing stamps", f.raw.batch)));
        };
        if let Some((i, _)) = stamps.iter().enumerate().find(|(_, s)| s.duration_ns().is_none()) {
            let kind = LaunchKind::of(inst.launches()[i].1.launcher);
            return Err(Error::invalid(
                &self.plan.name,
                format!("batch {}: launch {i} ({kind:?}) has no complete stamps: {:?}", f.raw.batch, stamps[i]),
            ));
        }
        let sent = f.raw.formed_host - run_start;
        let sampled = self.plan.sample_windows.iter().any(|(a, b)| sent >= *a && sent < *b);
        Ok(RawBatch {
            noticed_host: noticed,
            start_gpu: start,
            end_gpu: end,
            launches: if sampled { stamps } else { Vec::new() },
            ..f.raw
        })
    }
}
