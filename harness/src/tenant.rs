//! One tenant serving requests: arrivals from a schedule built before the run, a queue, a
//! batching policy, one batch in flight at a time, each batch a CUDA-graph replay of the
//! model at the batch's bucket size, with fresh inputs from the input seed. The host notices
//! completions by polling an event; the batch's times come from the GPU's stamps, mapped onto
//! the host clock, so a request's latency is arrival to last kernel out on one clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use coloc_kernels::gpu::{Blas, Event, KernelLibrary, PinnedBuffer, Stream};
use coloc_kernels::ops::{LaunchEnv, OpSpec};
use coloc_kernels::timing::SLOT_BYTES;
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::Batching;
use serde::{Deserialize, Serialize};

use crate::clock::{ClockMap, mono_ns};
use crate::error::{Error, Result};
use crate::model::{ModelInstance, stamps_from};
use crate::record::{BatchRecord, KernelRecord, RequestRecord, TenantOutput};

/// Where requests come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Arrivals {
    /// Arrival times, ns from the start of the run (warm-up included), non-decreasing.
    Open(Vec<i64>),
    /// Clients that each send, wait for completion, think, and send again; no new request is
    /// issued after `stop_ns` (from the start of the run).
    Closed { think_ns: Vec<Vec<u64>>, stop_ns: i64 },
}

/// Everything needed to run one tenant, also in another process (an MPS client).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantPlan {
    pub index: u16,
    pub name: String,
    pub model: ModelSpec,
    pub seq: Option<usize>,
    pub context: Option<usize>,
    pub batching: Batching,
    pub arrivals: Arrivals,
    pub warmup_ns: i64,
    /// From the start of the run: requests still queued then are left unfinished.
    pub deadline_ns: i64,
    /// Keep the kernel records of batches sent inside these windows (ns from the start of the
    /// run). Every tenant of a run has the same windows, so every overlap inside them is seen.
    pub sample_windows: Vec<(i64, i64)>,
    pub weight_seed: u64,
    pub input_seed: u64,
}

impl TenantPlan {
    /// Batch sizes with a captured graph (see [`Batching::buckets`]).
    pub fn buckets(&self) -> Vec<usize> {
        self.batching.buckets()
    }

    pub fn graph(&self, batch: usize) -> Result<ModelGraph> {
        Ok(ModelGraph::build(&self.model, &BuildOptions { batch, seq: self.seq, context: self.context })?)
    }
}

struct InFlight {
    batch: u32,
    bucket: usize,
    requests: Vec<(u32, i64, usize)>,
    formed: i64,
}

/// A tenant made ready on a stream: graphs captured, buffers filled.
pub struct TenantRunner {
    plan: TenantPlan,
    lib: Arc<KernelLibrary>,
    stream: Arc<Stream>,
    _blas: Blas,
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
        let blas = Blas::new(&stream)?;
        let mut instances = Vec::new();
        let mut max_ops = 1;
        for bucket in plan.buckets() {
            let graph = plan.graph(bucket)?;
            max_ops = max_ops.max(graph.ops.len());
            let mut inst = ModelInstance::allocate(&device, graph)?;
            let env = LaunchEnv { lib, stream: &stream, blas: Some(&blas), bracket_library_calls: false };
            inst.initialize(&env, plan.weight_seed, plan.input_seed)?;
            inst.capture(&env)?;
            // one replay outside the run: first-launch costs stay out of the measurements
            inst.launch(&stream)?;
            instances.push((bucket, inst));
        }
        stream.synchronize()?;
        let readback = PinnedBuffer::alloc(&device, max_ops * SLOT_BYTES)?;
        let done = Event::new(stream.context())?;
        Ok(TenantRunner { plan, lib: lib.clone(), stream, _blas: blas, instances, readback, done, granted_sms })
    }

    pub fn plan(&self) -> &TenantPlan {
        &self.plan
    }

    /// Serves the schedule from `run_start` (host clock) until every request is done or the
    /// deadline passes; times are recorded relative to the end of the warm-up.
    pub fn run(&mut self, run_start: i64, clock: &ClockMap) -> Result<TenantOutput> {
        let window = run_start + self.plan.warmup_ns;
        let rel = |host: i64| host - window;
        let deadline = run_start + self.plan.deadline_ns;
        let mut out = TenantOutput {
            granted_sms: self.granted_sms,
            clock_uncertainty_ns: clock.uncertainty_ns,
            ..TenantOutput::default()
        };
        // queue entries: (request id, arrival host ns, client)
        let mut queue: VecDeque<(u32, i64, usize)> = VecDeque::new();
        let mut next_open = 0usize;
        let mut closed_heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
        let mut think_index: Vec<usize> = Vec::new();
        if let Arrivals::Closed { think_ns, .. } = &self.plan.arrivals {
            for (c, thinks) in think_ns.iter().enumerate() {
                closed_heap.push(Reverse((run_start + thinks.first().copied().unwrap_or(0) as i64, c)));
            }
            think_index = vec![1; think_ns.len()];
        }
        let mut next_request = 0u32;
        let mut next_batch = 0u32;
        let mut inflight: Option<InFlight> = None;
        loop {
            let now = mono_ns();
            let exhausted = match &self.plan.arrivals {
                Arrivals::Open(times) => {
                    while next_open < times.len() && run_start + times[next_open] <= now {
                        queue.push_back((next_request, run_start + times[next_open], 0));
                        next_request += 1;
                        next_open += 1;
                    }
                    next_open == times.len()
                }
                Arrivals::Closed { .. } => {
                    while let Some(Reverse((t, c))) = closed_heap.peek().copied() {
                        if t > now {
                            break;
                        }
                        closed_heap.pop();
                        queue.push_back((next_request, t, c));
                        next_request += 1;
                    }
                    closed_heap.is_empty()
                }
            };
            if inflight.is_some() {
                if self.done.is_complete()? {
                    let f = inflight.take().expect("in flight");
                    let end = self.complete(&f, &mut out, clock, window, run_start)?;
                    if let Arrivals::Closed { think_ns, stop_ns } = &self.plan.arrivals {
                        // each client of the batch thinks, then sends its next request
                        for &(_, _, c) in &f.requests {
                            let think = think_ns[c][think_index[c] % think_ns[c].len()] as i64;
                            think_index[c] += 1;
                            if end + think < run_start + stop_ns {
                                closed_heap.push(Reverse((end + think, c)));
                            }
                        }
                    }
                    continue;
                } else if now > deadline + 5_000_000_000 {
                    return Err(Error::invalid(
                        &self.plan.name,
                        "a batch did not complete within 5 s after the deadline",
                    ));
                }
            }
            if inflight.is_none() {
                if let Some(n) = self.ready(&queue, now, exhausted) {
                    let bucket =
                        self.instances.iter().position(|(b, _)| *b >= n).expect("a bucket holds the largest batch");
                    let requests: Vec<(u32, i64, usize)> = queue.drain(..n).collect();
                    let batch = next_batch;
                    next_batch += 1;
                    let formed = mono_ns();
                    let (_, inst) = &self.instances[bucket];
                    let env =
                        LaunchEnv { lib: &self.lib, stream: &self.stream, blas: None, bracket_library_calls: false };
                    inst.refill_inputs(&env, self.plan.input_seed ^ ((batch as u64) << 20))?;
                    inst.launch(&self.stream)?;
                    inst.queue_stamp_readback(&self.stream, &self.readback, 0)?;
                    self.done.record(&self.stream)?;
                    inflight = Some(InFlight { batch, bucket, requests, formed });
                    continue;
                }
            }
            if exhausted && queue.is_empty() && inflight.is_none() {
                break;
            }
            if now > deadline && inflight.is_none() {
                break;
            }
            std::hint::spin_loop();
        }
        // Requests still queued, and open-loop arrivals never admitted: recorded as not served.
        let tenant = self.plan.index;
        let unserved = |request: u32, arrival: i64| RequestRecord {
            tenant,
            request,
            batch: u32::MAX,
            arrival_ns: rel(arrival),
            formed_ns: None,
            start_ns: None,
            end_ns: None,
            warmup: arrival < window,
        };
        out.requests.extend(queue.into_iter().map(|(id, arrival, _)| unserved(id, arrival)));
        if let Arrivals::Open(times) = &self.plan.arrivals {
            let late = times.iter().enumerate().skip(next_open);
            out.requests
                .extend(late.map(|(i, t)| unserved((next_request as usize + i - next_open) as u32, run_start + t)));
        }
        Ok(out)
    }

    /// Records a completed batch and its requests; returns the batch's end on the host clock.
    fn complete(
        &self,
        f: &InFlight,
        out: &mut TenantOutput,
        clock: &ClockMap,
        window: i64,
        run_start: i64,
    ) -> Result<i64> {
        let host_done = mono_ns();
        let (bucket, inst) = &self.instances[f.bucket];
        let stamps = stamps_from(&self.readback, 0, inst.graph.ops.len());
        let first = stamps.iter().find_map(|s| s.start_ns);
        let last = stamps.iter().filter_map(|s| s.end_ns).max();
        let (Some(first), Some(last)) = (first, last) else {
            return Err(Error::invalid(&self.plan.name, format!("batch {} has no timing stamps", f.batch)));
        };
        let (start, end) = (clock.to_host(first), clock.to_host(last));
        let sent = f.formed - run_start;
        let sampled = self.plan.sample_windows.iter().any(|(a, b)| sent >= *a && sent < *b);
        out.batches.push(BatchRecord {
            tenant: self.plan.index,
            batch: f.batch,
            size: f.requests.len() as u16,
            bucket: *bucket as u16,
            formed_ns: f.formed - window,
            start_ns: start - window,
            end_ns: end - window,
            host_done_ns: host_done - window,
            sampled,
        });
        if sampled {
            for (op, s) in stamps.iter().enumerate() {
                let (Some(a), Some(b)) = (s.start_ns, s.end_ns) else { continue };
                out.kernels.push(KernelRecord {
                    tenant: self.plan.index,
                    batch: f.batch,
                    op: op as u16,
                    start_ns: clock.to_host(a) - window,
                    end_ns: clock.to_host(b) - window,
                    start_inferred: inst.graph.ops[op].op.starts_in_library(),
                });
            }
        }
        for &(id, arrival, _) in &f.requests {
            out.requests.push(RequestRecord {
                tenant: self.plan.index,
                request: id,
                batch: f.batch,
                arrival_ns: arrival - window,
                formed_ns: Some(f.formed - window),
                start_ns: Some(start - window),
                end_ns: Some(end - window),
                warmup: arrival < window,
            });
        }
        Ok(end)
    }

    /// How many queued requests to send now, if any.
    fn ready(&self, queue: &VecDeque<(u32, i64, usize)>, now: i64, exhausted: bool) -> Option<usize> {
        if queue.is_empty() {
            return None;
        }
        match self.plan.batching {
            Batching::Fixed { batch } if queue.len() >= batch => Some(batch),
            Batching::Dynamic { max_batch, .. } if queue.len() >= max_batch => Some(max_batch),
            Batching::Dynamic { timeout_ms, .. } if now - queue[0].1 >= (timeout_ms * 1e6) as i64 => Some(queue.len()),
            _ if exhausted => Some(queue.len()),
            _ => None,
        }
    }
}
