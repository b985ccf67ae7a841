//! What a tenant or an aggressor records while it runs, and how that becomes rows of the
//! dataset once the run's clock map is known. During the run, GPU stamps stay on the GPU's
//! clock (the map needs a calibration after the run, for its rate); host times are absolute
//! CLOCK_MONOTONIC. Rows are relative to the start of the measured window.

use coloc_dataset::clock::ClockMap;
use coloc_dataset::rows::{BatchRow, KernelRow, LaunchKind, RequestRow};
use coloc_kernels::timing::Stamp;
use coloc_workloads::batcher::{Queued, Trigger};
use serde::{Deserialize, Serialize};

/// Which launch of a graph a stamp slot belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchId {
    pub op: u16,
    /// Within the operator.
    pub launch: u8,
    pub kind: LaunchKind,
}

/// One batch as the serving loop saw it.
#[derive(Clone, Debug)]
pub struct RawBatch {
    pub batch: u32,
    pub bucket: usize,
    pub trigger: Trigger,
    pub requests: Vec<Queued>,
    /// Host: the batch was formed and sent; the host saw it complete.
    pub formed_host: i64,
    pub noticed_host: i64,
    /// GPU: first launch in, last launch out.
    pub start_gpu: u64,
    pub end_gpu: u64,
    /// Every launch's stamps, for sampled batches (empty otherwise).
    pub launches: Vec<Stamp>,
}

/// Everything one tenant recorded, on the clocks it was recorded on.
#[derive(Clone, Debug, Default)]
pub struct RawTenant {
    pub tenant: u16,
    pub slo_ms: f64,
    /// Every launch of the graph at each bucket: (bucket, launches).
    pub launches: Vec<(usize, Vec<LaunchId>)>,
    pub batches: Vec<RawBatch>,
    /// Requests that arrived but were never served (host arrival times).
    pub unserved: Vec<Queued>,
    /// Host time at which a closed loop stopped sending (none for open arrivals).
    pub stopped_sending_host: Option<i64>,
}

/// One aggressor launch: its number and its launches' stamps.
#[derive(Clone, Debug)]
pub struct RawAggressorLaunch {
    pub number: u32,
    pub launches: Vec<Stamp>,
}

#[derive(Clone, Debug, Default)]
pub struct RawAggressor {
    pub aggressor: u16,
    pub launch_ids: Vec<LaunchId>,
    pub launches: Vec<RawAggressorLaunch>,
}

/// Rows of one tenant or aggressor, relative to the measured window, without the run key
/// (filled in when the run is written).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TenantOutput {
    pub requests: Vec<RequestRow>,
    pub batches: Vec<BatchRow>,
    pub kernels: Vec<KernelRow>,
    /// SMs the tenant's context may use, as the driver reports (green, MPS) or the device's.
    pub granted_sms: u32,
    /// The clock map its GPU times were mapped with.
    pub clock: Option<ClockMap>,
    /// Closed loops: when it stopped sending, relative to the window.
    pub stopped_sending_ns: Option<i64>,
}

impl TenantOutput {
    pub fn append(&mut self, other: TenantOutput) {
        self.requests.extend(other.requests);
        self.batches.extend(other.batches);
        self.kernels.extend(other.kernels);
    }
}

/// A request row with its parts computed: every time relative to the window.
pub fn request_row(
    tenant: u16,
    q: &Queued,
    batch: Option<u32>,
    times: Option<(i64, i64, i64, i64)>,
    slo_ms: f64,
    window: i64,
) -> RequestRow {
    let arrival = q.arrival_ns - window;
    let (formed, start, end, noticed) = match times {
        Some((f, s, e, n)) => (Some(f), Some(s), Some(e), Some(n)),
        None => (None, None, None, None),
    };
    let latency = end.map(|e| e - arrival);
    RequestRow {
        run: String::new(),
        tenant,
        request: q.request,
        batch,
        arrival_ns: arrival,
        formed_ns: formed,
        start_ns: start,
        end_ns: end,
        noticed_ns: noticed,
        queue_wait_ns: formed.map(|f| f - arrival),
        dispatch_wait_ns: formed.zip(start).map(|(f, s)| s - f),
        gpu_ns: start.zip(end).map(|(s, e)| e - s),
        latency_ns: latency,
        slo_met: latency.is_some_and(|l| l as f64 / 1e6 <= slo_ms),
        warmup: arrival < 0,
    }
}

impl RawTenant {
    /// Rows, with GPU stamps mapped by `map` and every time relative to `window` (host).
    pub fn into_output(self, map: &ClockMap, window: i64, granted_sms: u32) -> TenantOutput {
        let rel_gpu = |g: u64| map.to_host(g) - window;
        let mut out = TenantOutput {
            granted_sms,
            clock: Some(*map),
            stopped_sending_ns: self.stopped_sending_host.map(|h| h - window),
            ..TenantOutput::default()
        };
        for b in &self.batches {
            let (formed, noticed) = (b.formed_host - window, b.noticed_host - window);
            let (start, end) = (rel_gpu(b.start_gpu), rel_gpu(b.end_gpu));
            out.batches.push(BatchRow {
                run: String::new(),
                tenant: self.tenant,
                batch: b.batch,
                size: b.requests.len() as u16,
                bucket: b.bucket as u16,
                trigger: b.trigger,
                formed_ns: formed,
                start_ns: start,
                end_ns: end,
                noticed_ns: noticed,
                sampled: !b.launches.is_empty(),
            });
            for q in &b.requests {
                let times = (formed, start, end, noticed);
                out.requests.push(request_row(self.tenant, q, Some(b.batch), Some(times), self.slo_ms, window));
            }
            if b.launches.is_empty() {
                continue;
            }
            let ids = self.launches.iter().find(|(bucket, _)| *bucket == b.bucket).map(|(_, ids)| ids);
            for (i, s) in b.launches.iter().enumerate() {
                let (Some(id), Some(a), Some(e)) = (ids.and_then(|ids| ids.get(i)), s.start_ns, s.end_ns) else {
                    continue;
                };
                out.kernels.push(KernelRow {
                    run: String::new(),
                    tenant: Some(self.tenant),
                    aggressor: None,
                    batch: b.batch,
                    op: id.op,
                    launch: id.launch,
                    kind: id.kind,
                    start_ns: rel_gpu(a),
                    end_ns: rel_gpu(e),
                });
            }
        }
        out.requests.extend(self.unserved.iter().map(|q| request_row(self.tenant, q, None, None, self.slo_ms, window)));
        out
    }
}

impl RawAggressor {
    pub fn into_output(self, map: &ClockMap, window: i64, granted_sms: u32) -> TenantOutput {
        let mut out = TenantOutput { granted_sms, clock: Some(*map), ..TenantOutput::default() };
        for l in &self.launches {
            for (s, id) in l.launches.iter().zip(&self.launch_ids) {
                let (Some(a), Some(e)) = (s.start_ns, s.end_ns) else { continue };
                out.kernels.push(KernelRow {
                    run: String::new(),
                    tenant: None,
                    aggressor: Some(self.aggressor),
                    batch: l.number,
                    op: id.op,
                    launch: id.launch,
                    kind: id.kind,
                    start_ns: map.to_host(a) - window,
                    end_ns: map.to_host(e) - window,
                });
            }
        }
        out
    }
}

/// The id of every launch of `launches` as a model lists them: (operator, launch spec).
pub fn launch_ids(launches: &[(usize, coloc_kernels::ops::LaunchSpec)]) -> Vec<LaunchId> {
    let mut out = Vec::with_capacity(launches.len());
    let mut within = 0u8;
    for (i, (op, l)) in launches.iter().enumerate() {
        within = if i > 0 && launches[i - 1].0 == *op { within + 1 } else { 0 };
        let kind = LaunchKind::of(l.launcher);
        out.push(LaunchId { op: *op as u16, launch: within, kind });
    }
    out
}
