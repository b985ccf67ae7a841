//! Every run starts with the GPU to this process alone. A GPU on which another process holds
//! a context (an MPS server still shutting down after the previous run, client processes of
//! one) launches kernels with shorter gaps between them: the first dataset's time-sliced runs
//! right after MPS runs ran 3-5% faster, and so did the drift reference. So before each run the
//! harness waits until NVML lists no compute process but its own.

use std::time::{Duration, Instant};

use coloc_kernels::nvml::NvmlDevice;

/// How long a run waits for other processes to leave the GPU.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(20);

/// What the wait came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Settled {
    /// No other process held a context (after this long).
    Alone(Duration),
    /// These processes still did after [`SETTLE_LIMIT`].
    Shared(Vec<u32>),
    /// NVML could not tell.
    Unknown(String),
}

impl Settled {
    /// A note for the run, if the wait is worth one.
    pub fn note(&self) -> Option<String> {
        match self {
            Settled::Alone(d) if *d >= Duration::from_millis(100) => {
                Some(format!("waited {:.1} s for other processes to leave the GPU before the run", d.as_secs_f64()))
            }
            Settled::Alone(_) => None,
            Settled::Shared(pids) => Some(format!(
                "processes {pids:?} still held the GPU after {} s; the run went ahead beside them",
                SETTLE_LIMIT.as_secs()
            )),
            Settled::Unknown(why) => Some(format!("could not tell whether other processes held the GPU: {why}")),
        }
    }
}

/// Waits until no process but this one has a compute context on the device.
pub fn settle(nvml: Option<&NvmlDevice>) -> Settled {
    let Some(nvml) = nvml else { return Settled::Unknown("NVML unavailable".into()) };
    let me = std::process::id();
    let t0 = Instant::now();
    loop {
        match nvml.compute_pids() {
            Err(e) => return Settled::Unknown(e),
            Ok(pids) => {
                let others: Vec<u32> = pids.into_iter().filter(|p| *p != me).collect();
                if others.is_empty() {
                    return Settled::Alone(t0.elapsed());
                }
                if t0.elapsed() > SETTLE_LIMIT {
                    return Settled::Shared(others);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
