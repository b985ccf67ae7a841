//! GEMMs through cuBLAS, in row-major terms.

use std::ffi::{CStr, c_void};

use cudarc::cublas::sys as cublas;
use serde::{Deserialize, Serialize};

use super::context::Stream;
use super::libs;
use super::memory::DeviceBuffer;
use crate::error::{Error, Result};

/// Arithmetic of a GEMM: operand storage and the tensor-core mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmPrecision {
    /// f32 storage, full f32 arithmetic (no tensor cores).
    F32,
    /// f32 storage, tensor cores in TF32 (10-bit mantissa products, f32 accumulation).
    Tf32,
    /// bf16 storage, f32 accumulation, bf16 result.
    Bf16,
}

impl GemmPrecision {
    pub fn elem_bytes(self) -> usize {
        match self {
            GemmPrecision::F32 | GemmPrecision::Tf32 => 4,
            GemmPrecision::Bf16 => 2,
        }
    }

    pub fn dtype(self) -> crate::types::DType {
        match self {
            GemmPrecision::F32 | GemmPrecision::Tf32 => crate::types::DType::F32,
            GemmPrecision::Bf16 => crate::types::DType::Bf16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GemmPrecision::F32 => "f32",
            GemmPrecision::Tf32 => "tf32",
            GemmPrecision::Bf16 => "bf16",
        }
    }
}

/// Row-major `C[b] = alpha * A[b] (m x k) * op(B[b]) + beta * C[b]` for b in 0..batch, where
/// B[b] is stored k x n, or n x k when `b_transposed` (the layout of a linear layer's weight).
#[derive(Clone, Copy, Debug)]
pub struct GemmCall {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub b_transposed: bool,
    pub precision: GemmPrecision,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    /// Elements between consecutive rows of A (at least k).
    pub lda: usize,
    /// Elements between consecutive rows of B as stored (at least n, or k when transposed).
    pub ldb: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
    pub alpha: f32,
    pub beta: f32,
}

impl GemmCall {
    /// A dense single GEMM: rows of A and B packed, alpha 1, beta 0.
    #[allow(clippy::too_many_arguments)]
    pub fn dense(
        m: usize,
        n: usize,
        k: usize,
        b_transposed: bool,
        precision: GemmPrecision,
        a: u64,
        b: u64,
        c: u64,
    ) -> Self {
        GemmCall {
            m,
            n,
            k,
            batch: 1,
            b_transposed,
            precision,
            a,
            b,
            c,
            lda: k,
            ldb: if b_transposed { k } else { n },
            stride_a: m * k,
            stride_b: k * n,
            stride_c: m * n,
            alpha: 1.0,
            beta: 0.0,
        }
    }
}

/// Workspace handed to cuBLAS so that it never allocates (which would break graph capture).
const WORKSPACE_BYTES: usize = 32 << 20;

/// A cuBLAS handle bound to one stream.
pub struct Blas {
    handle: cublas::cublasHandle_t,
    _workspace: DeviceBuffer,
}

unsafe impl Send for Blas {}
unsafe impl Sync for Blas {}

fn status(s: cublas::cublasStatus_t, call: &'static str) -> Result<()> {
    if s == cublas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        return Ok(());
    }
    let text = unsafe { CStr::from_ptr(cublas::cublasGetStatusString(s)) }.to_string_lossy().into_owned();
    Err(Error::Cublas { call, status: text })
}

impl Blas {
    /// A handle whose work goes to `stream` (created in the stream's context).
    pub fn new(stream: &Stream) -> Result<Blas> {
        libs::require_cublas()?;
        let ctx = stream.context();
        ctx.bind()?;
        let workspace = DeviceBuffer::alloc(ctx.device(), WORKSPACE_BYTES, "cuBLAS workspace")?;
        ctx.bind()?;
        let mut handle = std::ptr::null_mut();
        status(unsafe { cublas::cublasCreate_v2(&mut handle) }, "cublasCreate_v2")?;
        let blas = Blas { handle, _workspace: workspace };
        status(
            unsafe { cublas::cublasSetStream_v2(handle, stream.raw() as cublas::cudaStream_t) },
            "cublasSetStream_v2",
        )?;
        status(
            unsafe { cublas::cublasSetWorkspace_v2(handle, blas._workspace.ptr() as *mut c_void, WORKSPACE_BYTES) },
            "cublasSetWorkspace_v2",
        )?;
        Ok(blas)
    }

    /// cuBLAS's version number (e.g. 130001).
    pub fn version(&self) -> Result<i32> {
        let mut v = 0;
        status(unsafe { cublas::cublasGetVersion_v2(self.handle, &mut v) }, "cublasGetVersion_v2")?;
        Ok(v)
    }

    /// Queues the GEMM on the handle's stream. Row-major C = A * op(B) is computed as the
    /// column-major C^T = op(B)^T * A^T, which swaps the operands and keeps every matrix in
    /// place.
    pub fn gemm(&self, g: &GemmCall) -> Result<()> {
        use cublas::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let (data, compute) = data_and_compute(g.precision);
        let trans_b = if g.b_transposed { CUBLAS_OP_T } else { CUBLAS_OP_N };
        // SAFETY: the handle is live and bound to its stream; the operands are device
        // allocations of the call's shape that the caller keeps alive until the launch ends.
        let s = unsafe {
            cublas::cublasGemmStridedBatchedEx(
                self.handle,
                trans_b,
                CUBLAS_OP_N,
                g.n as i32,
                g.m as i32,
                g.k as i32,
                &g.alpha as *const f32 as *const c_void,
                g.b as *const c_void,
                data,
                g.ldb as i32,
                g.stride_b as i64,
                g.a as *const c_void,
                data,
                g.lda as i32,
                g.stride_a as i64,
                &g.beta as *const f32 as *const c_void,
                g.c as *mut c_void,
                data,
                g.n as i32,
                g.stride_c as i64,
                g.batch as i32,
                compute,
                cublas::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        status(s, "cublasGemmStridedBatchedEx")
    }
}

/// The A, B and C pointers of GEMMs of one shape whose operands live apart (each tenant its
/// own), in device memory: one batched launch runs them all (space-time's "super-kernel").
pub struct GemmPointers {
    shape: GemmCall,
    a: DeviceBuffer,
    b: DeviceBuffer,
    c: DeviceBuffer,
    count: usize,
}

impl GemmPointers {
    /// Uploads the operands' pointers of `calls`, which must share one shape (m, n, k, layout,
    /// precision, alpha, beta) and be single GEMMs.
    pub fn new(device: &std::sync::Arc<super::Device>, calls: &[GemmCall]) -> Result<GemmPointers> {
        let what = "a batched launch of GEMMs";
        let first = calls.first().ok_or_else(|| Error::invalid(what, "no GEMMs given"))?;
        let key = |g: &GemmCall| (g.m, g.n, g.k, g.b_transposed, g.precision, g.lda, g.ldb, g.batch);
        if let Some(i) =
            calls.iter().position(|g| key(g) != key(first) || g.alpha != first.alpha || g.beta != first.beta)
        {
            return Err(Error::invalid(
                what,
                format!("GEMM {i} differs from GEMM 0 in shape: one launch runs one shape"),
            ));
        }
        if first.batch != 1 {
            return Err(Error::invalid(what, format!("GEMMs of batch {}: give single GEMMs", first.batch)));
        }
        let upload = |ptrs: Vec<u64>, name: &str| upload_pointers(device, &ptrs, name);
        Ok(GemmPointers {
            shape: *first,
            a: upload(calls.iter().map(|g| g.a).collect(), "batched GEMM A pointers")?,
            b: upload(calls.iter().map(|g| g.b).collect(), "batched GEMM B pointers")?,
            c: upload(calls.iter().map(|g| g.c).collect(), "batched GEMM C pointers")?,
            count: calls.len(),
        })
    }
}

impl Blas {
    /// Queues every GEMM of `p` as one launch (cublasGemmBatchedEx), row-major as [`Blas::gemm`].
    pub fn gemm_pointers(&self, p: &GemmPointers) -> Result<()> {
        use cublas::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let g = &p.shape;
        let (data, compute) = data_and_compute(g.precision);
        let trans_b = if g.b_transposed { CUBLAS_OP_T } else { CUBLAS_OP_N };
        // SAFETY: the handle is live and bound to its stream; the three pointer arrays hold
        // `count` device pointers each (uploaded by `GemmPointers::new`, alive as long as `p`),
        // to operands of the checked shape that the caller keeps alive until the launch ends.
        let s = unsafe {
            cublas::cublasGemmBatchedEx(
                self.handle,
                trans_b,
                CUBLAS_OP_N,
                g.n as i32,
                g.m as i32,
                g.k as i32,
                &g.alpha as *const f32 as *const c_void,
                p.b.ptr() as *const *const c_void,
                data,
                g.ldb as i32,
                p.a.ptr() as *const *const c_void,
                data,
                g.lda as i32,
                &g.beta as *const f32 as *const c_void,
                p.c.ptr() as *const *mut c_void,
                data,
                g.n as i32,
                p.count as i32,
                compute,
                cublas::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        status(s, "cublasGemmBatchedEx")
    }
}

/// The first cuBLAS with grouped batched GEMMs (12.5).
const GROUPED_SINCE: i32 = 120_500;

/// GEMMs of a few shapes that share a precision, their operands apart, grouped by shape: one
/// grouped launch runs them all (tenants of different models whose layers agree in N and K).
pub struct GemmGroups {
    /// One call per group, its shape's representative, and how many calls it has.
    shapes: Vec<GemmCall>,
    sizes: Vec<i32>,
    a: DeviceBuffer,
    b: DeviceBuffer,
    c: DeviceBuffer,
}

impl GemmGroups {
    /// Groups `calls` by shape (m, n, k, layout, alpha, beta) in order of first appearance;
    /// every call a single GEMM of one precision.
    pub fn new(device: &std::sync::Arc<super::Device>, calls: &[GemmCall]) -> Result<GemmGroups> {
        let (shapes, members) = group_by_shape(calls)?;
        let ordered: Vec<&GemmCall> = members.iter().flatten().map(|&i| &calls[i]).collect();
        let upload = |ptrs: Vec<u64>, name: &str| upload_pointers(device, &ptrs, name);
        Ok(GemmGroups {
            sizes: members.iter().map(|m| m.len() as i32).collect(),
            a: upload(ordered.iter().map(|g| g.a).collect(), "grouped GEMM A pointers")?,
            b: upload(ordered.iter().map(|g| g.b).collect(), "grouped GEMM B pointers")?,
            c: upload(ordered.iter().map(|g| g.c).collect(), "grouped GEMM C pointers")?,
            shapes,
        })
    }
}

impl Blas {
    /// Queues every GEMM of `g` as one grouped launch (cublasGemmGroupedBatchedEx), row-major
    /// as [`Blas::gemm`].
    pub fn gemm_groups(&self, g: &GemmGroups) -> Result<()> {
        use cublas::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        // the symbol is looked up on first use: an older library would panic there
        let version = self.version()?;
        if version < GROUPED_SINCE {
            return Err(Error::invalid(
                "a grouped launch of GEMMs",
                format!("cuBLAS {version} has no cublasGemmGroupedBatchedEx (since {GROUPED_SINCE})"),
            ));
        }
        let (data, compute) = data_and_compute(g.shapes[0].precision);
        let per = |f: &dyn Fn(&GemmCall) -> i32| -> Vec<i32> { g.shapes.iter().map(f).collect() };
        let trans_b: Vec<cublas::cublasOperation_t> =
            g.shapes.iter().map(|s| if s.b_transposed { CUBLAS_OP_T } else { CUBLAS_OP_N }).collect();
        let trans_a = vec![CUBLAS_OP_N; g.shapes.len()];
        let (m, n, k) = (per(&|s| s.n as i32), per(&|s| s.m as i32), per(&|s| s.k as i32));
        let (lda, ldb, ldc) = (per(&|s| s.ldb as i32), per(&|s| s.lda as i32), per(&|s| s.n as i32));
        let alpha: Vec<f32> = g.shapes.iter().map(|s| s.alpha).collect();
        let beta: Vec<f32> = g.shapes.iter().map(|s| s.beta).collect();
        // SAFETY: the handle is live and bound to its stream; every host array has one entry
        // per group and lives to the end of the call; the device pointer arrays hold the sum of
        // `sizes` pointers, ordered by group (uploaded by `GemmGroups::new`, alive as long as
        // `g`), to operands of their group's shape that the caller keeps alive until the launch
        // ends. Column-major with the operands swapped, as in `gemm`.
        let s = unsafe {
            cublas::cublasGemmGroupedBatchedEx(
                self.handle,
                trans_b.as_ptr(),
                trans_a.as_ptr(),
                m.as_ptr(),
                n.as_ptr(),
                k.as_ptr(),
                alpha.as_ptr() as *const c_void,
                g.b.ptr() as *const *const c_void,
                data,
                lda.as_ptr(),
                g.a.ptr() as *const *const c_void,
                data,
                ldb.as_ptr(),
                beta.as_ptr() as *const c_void,
                g.c.ptr() as *const *mut c_void,
                data,
                ldc.as_ptr(),
                g.shapes.len() as i32,
                g.sizes.as_ptr(),
                compute,
            )
        };
        status(s, "cublasGemmGroupedBatchedEx")
    }
}

/// Device pointers in device memory, for a launch that reads its operands' addresses there.
fn upload_pointers(device: &std::sync::Arc<super::Device>, ptrs: &[u64], name: &str) -> Result<DeviceBuffer> {
    let buf = DeviceBuffer::alloc(device, 8 * ptrs.len(), name)?;
    buf.upload(ptrs)?;
    Ok(buf)
}

/// The distinct shapes of `calls` (m, n, k, layout, alpha, beta) in order of first appearance,
/// and the indices of the calls of each; every call a single GEMM of one precision.
fn group_by_shape(calls: &[GemmCall]) -> Result<(Vec<GemmCall>, Vec<Vec<usize>>)> {
    let what = "a grouped launch of GEMMs";
    let first = calls.first().ok_or_else(|| Error::invalid(what, "no GEMMs given"))?;
    if let Some(i) = calls.iter().position(|g| g.precision != first.precision || g.batch != 1) {
        return Err(Error::invalid(what, format!("GEMM {i} is not a single GEMM of GEMM 0's precision")));
    }
    let key = |g: &GemmCall| (g.m, g.n, g.k, g.b_transposed, g.lda, g.ldb, g.alpha.to_bits(), g.beta.to_bits());
    let mut shapes: Vec<GemmCall> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, g) in calls.iter().enumerate() {
        match shapes.iter().position(|s| key(s) == key(g)) {
            Some(j) => members[j].push(i),
            None => {
                shapes.push(*g);
                members.push(vec![i]);
            }
        }
    }
    Ok((shapes, members))
}

/// The storage type and compute mode of a precision.
fn data_and_compute(precision: GemmPrecision) -> (cublas::cudaDataType, cublas::cublasComputeType_t) {
    match precision {
        GemmPrecision::F32 => (cublas::cudaDataType::CUDA_R_32F, cublas::cublasComputeType_t::CUBLAS_COMPUTE_32F),
        GemmPrecision::Tf32 => {
            (cublas::cudaDataType::CUDA_R_32F, cublas::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32)
        }
        GemmPrecision::Bf16 => (cublas::cudaDataType::CUDA_R_16BF, cublas::cublasComputeType_t::CUBLAS_COMPUTE_32F),
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        unsafe {
            cublas::cublasDestroy_v2(self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemms_group_by_shape_in_order_of_first_appearance() {
        let call = |m: usize, p: u64| GemmCall::dense(m, 3072, 768, true, GemmPrecision::Bf16, p, p + 1, p + 2);
        let calls = [call(128, 0), call(197, 10), call(128, 20), call(197, 30), call(128, 40)];
        let (shapes, members) = group_by_shape(&calls).unwrap();
        assert_eq!(shapes.iter().map(|s| s.m).collect::<Vec<_>>(), vec![128, 197]);
        assert_eq!(members, vec![vec![0, 2, 4], vec![1, 3]]);
        let mut f32 = call(128, 50);
        f32.precision = GemmPrecision::F32;
        let e = group_by_shape(&[call(128, 0), f32]).unwrap_err().to_string();
        assert!(e.contains("GEMM 1 is not a single GEMM of GEMM 0's precision"), "{e}");
        assert!(group_by_shape(&[]).is_err());
    }
}
