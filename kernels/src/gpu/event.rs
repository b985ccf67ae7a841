//! CUDA events, for device-side timing between two points of a stream.

use cudarc::driver::sys;

use super::context::{ExecContext, Stream};
use super::driver::cu;
use crate::error::Result;

pub struct Event {
    raw: sys::CUevent,
}

unsafe impl Send for Event {}
unsafe impl Sync for Event {}

impl Event {
    /// A timing event created in `ctx` (record it only on streams of the same context).
    pub fn new(ctx: &ExecContext) -> Result<Event> {
        ctx.bind()?;
        let mut raw = std::ptr::null_mut();
        cu!(cuEventCreate(&mut raw, sys::CUevent_flags::CU_EVENT_DEFAULT as u32))?;
        Ok(Event { raw })
    }

    pub(crate) fn raw(&self) -> sys::CUevent {
        self.raw
    }

    pub fn record(&self, stream: &Stream) -> Result<()> {
        stream.context().bind()?;
        cu!(cuEventRecord(self.raw, stream.raw()))
    }

    /// True when the work before the last record has finished (never blocks).
    pub fn is_complete(&self) -> Result<bool> {
        let r = unsafe { sys::cuEventQuery(self.raw) };
        if r == sys::CUresult::CUDA_ERROR_NOT_READY {
            return Ok(false);
        }
        super::driver::check(r, "cuEventQuery")?;
        Ok(true)
    }

    pub fn synchronize(&self) -> Result<()> {
        cu!(cuEventSynchronize(self.raw))
    }

    /// Milliseconds from `start` to `self`, both recorded and complete.
    pub fn elapsed_ms_since(&self, start: &Event) -> Result<f32> {
        let mut ms = 0f32;
        cu!(cuEventElapsedTime_v2(&mut ms, start.raw, self.raw))?;
        Ok(ms)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        unsafe {
            sys::cuEventDestroy_v2(self.raw);
        }
    }
}
