//! Execution contexts (the primary context or a green context) and their streams.

use std::sync::Arc;

use cudarc::driver::sys;

use super::device::Device;
use super::driver::cu;
use crate::error::Result;

/// Where kernels run: the whole device (primary context) or a green context holding a
/// subset of the SMs. Cheap to clone; a green context is destroyed with its last clone.
#[derive(Clone)]
pub struct ExecContext {
    inner: Arc<ExecInner>,
}

struct ExecInner {
    device: Arc<Device>,
    raw: sys::CUcontext,
    green: Option<sys::CUgreenCtx>,
    sm_count: u32,
    label: String,
}

unsafe impl Send for ExecInner {}
unsafe impl Sync for ExecInner {}

impl Drop for ExecInner {
    fn drop(&mut self) {
        if let Some(g) = self.green {
            unsafe {
                sys::cuGreenCtxDestroy(g);
            }
        }
    }
}

impl ExecContext {
    /// The whole device, through its primary context.
    pub fn primary(device: &Arc<Device>) -> ExecContext {
        ExecContext {
            inner: Arc::new(ExecInner {
                device: device.clone(),
                raw: device.primary_context(),
                green: None,
                sm_count: device.info().sm_count,
                label: "device".into(),
            }),
        }
    }

    /// Wraps a created green context; it is destroyed when the last clone drops.
    pub(crate) fn from_green(
        device: &Arc<Device>,
        green: sys::CUgreenCtx,
        sm_count: u32,
        label: String,
    ) -> Result<Self> {
        let mut raw = std::ptr::null_mut();
        let converted = cu!(cuCtxFromGreenCtx(&mut raw, green));
        if let Err(e) = converted {
            unsafe {
                sys::cuGreenCtxDestroy(green);
            }
            return Err(e);
        }
        Ok(ExecContext {
            inner: Arc::new(ExecInner { device: device.clone(), raw, green: Some(green), sm_count, label }),
        })
    }

    pub fn device(&self) -> &Arc<Device> {
        &self.inner.device
    }

    /// SMs this context may run on (all of them for the primary context).
    pub fn sm_count(&self) -> u32 {
        self.inner.sm_count
    }

    pub fn is_green(&self) -> bool {
        self.inner.green.is_some()
    }

    pub fn label(&self) -> &str {
        &self.inner.label
    }

    pub fn raw(&self) -> sys::CUcontext {
        self.inner.raw
    }

    /// Makes this context current on the calling thread.
    pub fn bind(&self) -> Result<()> {
        cu!(cuCtxSetCurrent(self.inner.raw))
    }

    /// A non-blocking stream in this context. `priority` follows CUDA: lower numbers are
    /// higher priority, clamped by the driver to the device's range.
    pub fn new_stream(&self, priority: i32) -> Result<Stream> {
        self.bind()?;
        let mut raw = std::ptr::null_mut();
        let flags = sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32;
        match self.inner.green {
            Some(g) => cu!(cuGreenCtxStreamCreate(&mut raw, g, flags, priority))?,
            None => cu!(cuStreamCreateWithPriority(&mut raw, flags, priority))?,
        }
        Ok(Stream { ctx: self.clone(), raw, priority })
    }
}

/// A CUDA stream bound to one execution context.
pub struct Stream {
    ctx: ExecContext,
    raw: sys::CUstream,
    priority: i32,
}

unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

impl Stream {
    pub fn context(&self) -> &ExecContext {
        &self.ctx
    }

    pub fn raw(&self) -> sys::CUstream {
        self.raw
    }

    pub fn priority(&self) -> i32 {
        self.priority
    }

    pub fn synchronize(&self) -> Result<()> {
        cu!(cuStreamSynchronize(self.raw))
    }

    /// Work queued on this stream from now on waits until `event`'s last record has completed
    /// (the event may belong to another context of the same device).
    pub fn wait_for(&self, event: &super::Event) -> Result<()> {
        self.ctx.bind()?;
        cu!(cuStreamWaitEvent(self.raw, event.raw(), 0))
    }

    /// True when all work queued so far has finished.
    pub fn is_idle(&self) -> Result<bool> {
        let r = unsafe { sys::cuStreamQuery(self.raw) };
        if r == sys::CUresult::CUDA_ERROR_NOT_READY {
            return Ok(false);
        }
        super::driver::check(r, "cuStreamQuery")?;
        Ok(true)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        unsafe {
            sys::cuStreamDestroy_v2(self.raw);
        }
    }
}
