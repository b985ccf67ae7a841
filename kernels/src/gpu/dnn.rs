//! Convolutions through cuDNN, loaded at run time like cuBLAS; coloc's own convolution paths
//! remain for machines without it (see `docs/decisions.md`, "Convolution paths").
//!
//! Tensors are NHWC and filters KRSC (cuDNN's NHWC filter format), the layouts coloc's own
//! kernels use, so the same buffers serve every path. The algorithm comes from cuDNN's
//! heuristics, never from timing trial runs: the choice is then the same in every process
//! of a measurement (solo profile, tenants, MPS clients) and can be made during graph capture.

use std::ffi::{CStr, c_void};

use cudarc::cudnn::sys as dnn;

use super::context::Stream;
use super::libs;
use super::memory::DeviceBuffer;
use super::plans::Plans;
use crate::error::{Error, Result};

/// Workspace handed to cuDNN: algorithms that need more are not picked.
const WORKSPACE_BYTES: usize = 64 << 20;

/// Element type of a cuDNN convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnnType {
    Bf16,
}

/// One convolution's geometry: NHWC input, KRSC filter (`groups` = channels for depthwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub in_ch: usize,
    pub out_ch: usize,
    pub kernel: (usize, usize),
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
    pub dtype: DnnType,
}

fn status(s: dnn::cudnnStatus_t, call: &'static str) -> Result<()> {
    if s == dnn::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        return Ok(());
    }
    // SAFETY: cudnnGetErrorString returns a static NUL-terminated string for any status.
    let text = unsafe { CStr::from_ptr(dnn::cudnnGetErrorString(s)) }.to_string_lossy().into_owned();
    Err(Error::Cudnn { call, status: text })
}

/// The descriptors and algorithm of one convolution shape.
struct ConvPlan {
    x: dnn::cudnnTensorDescriptor_t,
    w: dnn::cudnnFilterDescriptor_t,
    conv: dnn::cudnnConvolutionDescriptor_t,
    y: dnn::cudnnTensorDescriptor_t,
    algo: dnn::cudnnConvolutionFwdAlgo_t,
}

impl Drop for ConvPlan {
    fn drop(&mut self) {
        // SAFETY: each descriptor was created by this plan and is destroyed once.
        unsafe {
            dnn::cudnnDestroyTensorDescriptor(self.x);
            dnn::cudnnDestroyFilterDescriptor(self.w);
            dnn::cudnnDestroyConvolutionDescriptor(self.conv);
            dnn::cudnnDestroyTensorDescriptor(self.y);
        }
    }
}

/// A cuDNN handle bound to one stream, with its workspace and a plan per convolution shape.
pub struct Dnn {
    handle: dnn::cudnnHandle_t,
    workspace: DeviceBuffer,
    plans: Plans<ConvShape, ConvPlan>,
}

// SAFETY: the handle is used from one thread at a time (plans behind a mutex, launches
// queued by the stream's owner), as cuDNN requires of a handle.
unsafe impl Send for Dnn {}
unsafe impl Sync for Dnn {}

fn out_hw(s: &ConvShape) -> (usize, usize) {
    ((s.h + 2 * s.pad - s.kernel.0) / s.stride + 1, (s.w + 2 * s.pad - s.kernel.1) / s.stride + 1)
}

fn i32_of(v: usize, what: &'static str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid("cuDNN convolution", format!("{what} = {v} exceeds 2^31 - 1")))
}

impl Dnn {
    /// A handle whose work goes to `stream`, or why cuDNN cannot be used.
    pub fn new(stream: &Stream) -> Result<Dnn> {
        libs::require_cudnn()?;
        let ctx = stream.context();
        ctx.bind()?;
        let workspace = DeviceBuffer::alloc(ctx.device(), WORKSPACE_BYTES, "cuDNN workspace")?;
        ctx.bind()?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: cudnnCreate writes a new handle into `handle`.
        status(unsafe { dnn::cudnnCreate(&mut handle) }, "cudnnCreate")?;
        let d = Dnn { handle, workspace, plans: Plans::new() };
        // SAFETY: the handle is live and the stream belongs to the current context.
        status(unsafe { dnn::cudnnSetStream(handle, stream.raw() as dnn::cudaStream_t) }, "cudnnSetStream")?;
        Ok(d)
    }

    /// cuDNN's version number (e.g. 91002 for 9.10.2).
    pub fn version() -> Result<usize> {
        libs::require_cudnn()?;
        // SAFETY: cudnnGetVersion takes no arguments and only reads the library's constant.
        Ok(unsafe { dnn::cudnnGetVersion() })
    }

    fn plan(&self, s: &ConvShape) -> Result<ConvPlan> {
        use dnn::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC;
        let data = match s.dtype {
            DnnType::Bf16 => dnn::cudnnDataType_t::CUDNN_DATA_BFLOAT16,
        };
        let (oh, ow) = out_hw(s);
        let mut p = ConvPlan {
            x: std::ptr::null_mut(),
            w: std::ptr::null_mut(),
            conv: std::ptr::null_mut(),
            y: std::ptr::null_mut(),
            algo: dnn::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
        };
        let (n, c, k) = (i32_of(s.n, "batch")?, i32_of(s.in_ch, "in_ch")?, i32_of(s.out_ch, "out_ch")?);
        let (h, w, oh, ow) =
            (i32_of(s.h, "height")?, i32_of(s.w, "width")?, i32_of(oh, "out_h")?, i32_of(ow, "out_w")?);
        let (kh, kw) = (i32_of(s.kernel.0, "kh")?, i32_of(s.kernel.1, "kw")?);
        let (stride, pad, groups) = (i32_of(s.stride, "stride")?, i32_of(s.pad, "pad")?, i32_of(s.groups, "groups")?);
        // SAFETY: every descriptor is created before it is set, and owned by `p`, which
        // destroys them on every path out (an early return drops it).
        unsafe {
            status(dnn::cudnnCreateTensorDescriptor(&mut p.x), "cudnnCreateTensorDescriptor")?;
            status(dnn::cudnnCreateFilterDescriptor(&mut p.w), "cudnnCreateFilterDescriptor")?;
            status(dnn::cudnnCreateConvolutionDescriptor(&mut p.conv), "cudnnCreateConvolutionDescriptor")?;
            status(dnn::cudnnCreateTensorDescriptor(&mut p.y), "cudnnCreateTensorDescriptor")?;
            status(
                dnn::cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NHWC, data, n, c, h, w),
                "cudnnSetTensor4dDescriptor",
            )?;
            status(
                dnn::cudnnSetFilter4dDescriptor(p.w, data, CUDNN_TENSOR_NHWC, k, c / groups, kh, kw),
                "cudnnSetFilter4dDescriptor",
            )?;
            status(
                dnn::cudnnSetConvolution2dDescriptor(
                    p.conv,
                    pad,
                    pad,
                    stride,
                    stride,
                    1,
                    1,
                    dnn::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                    dnn::cudnnDataType_t::CUDNN_DATA_FLOAT,
                ),
                "cudnnSetConvolution2dDescriptor",
            )?;
            status(dnn::cudnnSetConvolutionGroupCount(p.conv, groups), "cudnnSetConvolutionGroupCount")?;
            status(
                dnn::cudnnSetConvolutionMathType(p.conv, dnn::cudnnMathType_t::CUDNN_TENSOR_OP_MATH),
                "cudnnSetConvolutionMathType",
            )?;
            status(
                dnn::cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NHWC, data, n, k, oh, ow),
                "cudnnSetTensor4dDescriptor",
            )?;
        }
        const ASKED: usize = dnn::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_COUNT as usize;
        // SAFETY: the perf structs are plain data that cuDNN overwrites; zeroed is a valid value.
        let mut perf: [dnn::cudnnConvolutionFwdAlgoPerf_t; ASKED] = unsafe { std::mem::zeroed() };
        let mut returned = 0;
        // SAFETY: the descriptors are set above; `perf` has room for ASKED results.
        status(
            unsafe {
                dnn::cudnnGetConvolutionForwardAlgorithm_v7(
                    self.handle,
                    p.x,
                    p.w,
                    p.conv,
                    p.y,
                    ASKED as i32,
                    &mut returned,
                    perf.as_mut_ptr(),
                )
            },
            "cudnnGetConvolutionForwardAlgorithm_v7",
        )?;
        // ranked best first: the first that runs and fits the workspace
        let pick = perf[..returned.max(0) as usize]
            .iter()
            .find(|r| r.status == dnn::cudnnStatus_t::CUDNN_STATUS_SUCCESS && r.memory <= WORKSPACE_BYTES)
            .ok_or_else(|| {
                Error::invalid(
                    "cuDNN convolution",
                    format!("no algorithm for {s:?} fits a {WORKSPACE_BYTES}-byte workspace"),
                )
            })?;
        p.algo = pick.algo;
        Ok(p)
    }

    /// The algorithm cuDNN's heuristics pick for `shape` (its number in cuDNN's enum).
    pub fn algorithm(&self, shape: &ConvShape) -> Result<u32> {
        self.plans.with(shape, || self.plan(shape), |p| Ok(p.algo as u32))
    }

    /// Queues y = conv(x, w) on the handle's stream (no bias, no activation).
    pub fn conv_forward(&self, shape: &ConvShape, x: u64, w: u64, y: u64) -> Result<()> {
        self.plans.with(shape, || self.plan(shape), |p| self.forward(p, x, w, y))
    }

    fn forward(&self, p: &ConvPlan, x: u64, w: u64, y: u64) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: the plan's descriptors match the buffers' shapes (the caller's operands,
        // sized from the same shape); the workspace outlives the queued call.
        status(
            unsafe {
                dnn::cudnnConvolutionForward(
                    self.handle,
                    &alpha as *const f32 as *const c_void,
                    p.x,
                    x as *const c_void,
                    p.w,
                    w as *const c_void,
                    p.conv,
                    p.algo,
                    self.workspace.ptr() as *mut c_void,
                    WORKSPACE_BYTES,
                    &beta as *const f32 as *const c_void,
                    p.y,
                    y as *mut c_void,
                )
            },
            "cudnnConvolutionForward",
        )
    }
}

impl Drop for Dnn {
    fn drop(&mut self) {
        self.plans.clear();
        // SAFETY: the handle was created in `new` and is destroyed once, after its plans.
        unsafe {
            dnn::cudnnDestroy(self.handle);
        }
    }
}
