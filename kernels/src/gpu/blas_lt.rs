//! GEMMs with a fused epilogue through cuBLASLt: y = act(x * w^T + bias) in one call, as
//! production inference runs a linear layer (PyTorch's addmm takes this path for its bias).
//! Row-major terms as in [`super::blas`]: the column-major product is y^T = w * x^T, so the
//! bias runs along the rows cuBLASLt sees, one value per output feature.

use std::ffi::{CStr, c_void};

use cudarc::cublaslt::sys as lt;

use super::context::Stream;
use super::libs;
use super::memory::DeviceBuffer;
use super::plans::Plans;
use crate::error::{Error, Result};

/// Workspace handed to cuBLASLt (it never allocates, so calls can be captured).
const WORKSPACE_BYTES: usize = 32 << 20;

/// The element-wise work fused after the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmEpilogue {
    Bias,
    ReluBias,
    /// GELU in its tanh form (cuBLASLt's GELU), then bias first: act(x w^T + b).
    GeluTanhBias,
}

/// A bf16 linear layer's product: `rows` x `in_features` (rows `lda` apart) times the
/// transposed `out_features` x `in_features` weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinearShape {
    pub rows: usize,
    pub in_features: usize,
    pub out_features: usize,
    pub lda: usize,
    pub epilogue: GemmEpilogue,
}

fn status(s: lt::cublasStatus_t, call: &'static str) -> Result<()> {
    if s == lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        return Ok(());
    }
    // SAFETY: cublasLtGetStatusString returns a static NUL-terminated string for any status.
    let text = unsafe { CStr::from_ptr(lt::cublasLtGetStatusString(s)) }.to_string_lossy().into_owned();
    Err(Error::Cublas { call, status: text })
}

struct LinearPlan {
    desc: lt::cublasLtMatmulDesc_t,
    a: lt::cublasLtMatrixLayout_t,
    b: lt::cublasLtMatrixLayout_t,
    d: lt::cublasLtMatrixLayout_t,
    algo: lt::cublasLtMatmulAlgo_t,
}

impl Drop for LinearPlan {
    fn drop(&mut self) {
        // SAFETY: each descriptor was created by this plan (or is null) and is destroyed once.
        unsafe {
            if !self.desc.is_null() {
                lt::cublasLtMatmulDescDestroy(self.desc);
            }
            for l in [self.a, self.b, self.d] {
                if !l.is_null() {
                    lt::cublasLtMatrixLayoutDestroy(l);
                }
            }
        }
    }
}

/// A cuBLASLt handle queuing on one stream, with a plan per linear shape.
pub struct BlasLt {
    handle: lt::cublasLtHandle_t,
    stream: lt::cudaStream_t,
    workspace: DeviceBuffer,
    plans: Plans<LinearShape, LinearPlan>,
}

// SAFETY: plans sit behind a mutex and calls are queued by the stream's owner; cuBLASLt
// handles may be used from any thread.
unsafe impl Send for BlasLt {}
unsafe impl Sync for BlasLt {}

fn set_attr<T>(desc: lt::cublasLtMatmulDesc_t, attr: lt::cublasLtMatmulDescAttributes_t, v: &T) -> Result<()> {
    // SAFETY: `v` points at a value of the size passed, of the type the attribute takes.
    status(
        unsafe { lt::cublasLtMatmulDescSetAttribute(desc, attr, v as *const T as *const c_void, size_of::<T>()) },
        "cublasLtMatmulDescSetAttribute",
    )
}

impl BlasLt {
    pub fn new(stream: &Stream) -> Result<BlasLt> {
        libs::require_cublas()?;
        let ctx = stream.context();
        ctx.bind()?;
        let workspace = DeviceBuffer::alloc(ctx.device(), WORKSPACE_BYTES, "cuBLASLt workspace")?;
        ctx.bind()?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: cublasLtCreate writes a new handle into `handle`.
        status(unsafe { lt::cublasLtCreate(&mut handle) }, "cublasLtCreate")?;
        Ok(BlasLt { handle, stream: stream.raw() as lt::cudaStream_t, workspace, plans: Plans::new() })
    }

    fn plan(&self, s: &LinearShape) -> Result<LinearPlan> {
        use lt::cublasLtMatmulDescAttributes_t as A;
        let bf16 = lt::cudaDataType::CUDA_R_16BF;
        let mut p = LinearPlan {
            desc: std::ptr::null_mut(),
            a: std::ptr::null_mut(),
            b: std::ptr::null_mut(),
            d: std::ptr::null_mut(),
            // SAFETY: the algorithm is plain data, overwritten by the heuristic below.
            algo: unsafe { std::mem::zeroed() },
        };
        let (m, n, k) = (s.out_features as u64, s.rows as u64, s.in_features as u64);
        // SAFETY: each descriptor is created into `p`, which destroys it on every path out.
        unsafe {
            status(
                lt::cublasLtMatmulDescCreate(
                    &mut p.desc,
                    lt::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    lt::cudaDataType::CUDA_R_32F,
                ),
                "cublasLtMatmulDescCreate",
            )?;
            status(lt::cublasLtMatrixLayoutCreate(&mut p.a, bf16, k, m, k as i64), "cublasLtMatrixLayoutCreate")?;
            status(lt::cublasLtMatrixLayoutCreate(&mut p.b, bf16, k, n, s.lda as i64), "cublasLtMatrixLayoutCreate")?;
            status(lt::cublasLtMatrixLayoutCreate(&mut p.d, bf16, m, n, m as i64), "cublasLtMatrixLayoutCreate")?;
        }
        set_attr(
            p.desc,
            A::CUBLASLT_MATMUL_DESC_TRANSA,
            &(cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_T as i32),
        )?;
        set_attr(
            p.desc,
            A::CUBLASLT_MATMUL_DESC_TRANSB,
            &(cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N as i32),
        )?;
        let epilogue = match s.epilogue {
            GemmEpilogue::Bias => lt::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS,
            GemmEpilogue::ReluBias => lt::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_RELU_BIAS,
            GemmEpilogue::GeluTanhBias => lt::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_GELU_BIAS,
        };
        set_attr(p.desc, A::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue)?;
        set_attr(p.desc, A::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bf16)?;
        let mut pref = std::ptr::null_mut();
        // SAFETY: the preference is created, used for the heuristic query, and destroyed.
        let found = unsafe {
            status(lt::cublasLtMatmulPreferenceCreate(&mut pref), "cublasLtMatmulPreferenceCreate")?;
            let ws = WORKSPACE_BYTES as u64;
            let set = lt::cublasLtMatmulPreferenceSetAttribute(
                pref,
                lt::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &ws as *const u64 as *const c_void,
                size_of::<u64>(),
            );
            let mut result: lt::cublasLtMatmulHeuristicResult_t = std::mem::zeroed();
            let mut count = 0;
            let query = lt::cublasLtMatmulAlgoGetHeuristic(
                self.handle,
                p.desc,
                p.a,
                p.b,
                p.d,
                p.d,
                pref,
                1,
                &mut result,
                &mut count,
            );
            lt::cublasLtMatmulPreferenceDestroy(pref);
            status(set, "cublasLtMatmulPreferenceSetAttribute")?;
            status(query, "cublasLtMatmulAlgoGetHeuristic")?;
            (count > 0).then_some(result.algo)
        };
        p.algo = found.ok_or_else(|| Error::invalid("linear", format!("cuBLASLt has no algorithm for {s:?}")))?;
        Ok(p)
    }

    /// Queues y = epilogue(x * w^T, bias) for a bf16 linear layer.
    pub fn linear(&self, s: &LinearShape, x: u64, w: u64, bias: u64, y: u64) -> Result<()> {
        self.plans.with(s, || self.plan(s), |p| self.matmul(p, x, w, bias, y))
    }

    fn matmul(&self, p: &LinearPlan, x: u64, w: u64, bias: u64, y: u64) -> Result<()> {
        set_attr(p.desc, lt::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias)?;
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: layouts match the operands' shapes (sized by the caller from the same
        // shape); beta is 0, so C (given as y) is not read; the workspace outlives the call.
        status(
            unsafe {
                lt::cublasLtMatmul(
                    self.handle,
                    p.desc,
                    &alpha as *const f32 as *const c_void,
                    w as *const c_void,
                    p.a,
                    x as *const c_void,
                    p.b,
                    &beta as *const f32 as *const c_void,
                    y as *const c_void,
                    p.d,
                    y as *mut c_void,
                    p.d,
                    &p.algo,
                    self.workspace.ptr() as *mut c_void,
                    WORKSPACE_BYTES,
                    self.stream,
                )
            },
            "cublasLtMatmul",
        )
    }
}

impl Drop for BlasLt {
    fn drop(&mut self) {
        self.plans.clear();
        // SAFETY: created in `new`, destroyed once, after its plans.
        unsafe {
            lt::cublasLtDestroy(self.handle);
        }
    }
}
