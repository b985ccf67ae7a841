//! CUDA graphs: capture of a stream's work, replay, and the launch configuration of every
//! kernel inside (our own and cuBLAS's), read back from the captured nodes.

use std::ffi::CStr;

use cudarc::driver::sys;
use serde::Serialize;

use super::context::Stream;
use super::driver::{check, cu};
use crate::error::Result;

/// A captured graph (not yet instantiated).
pub struct Graph {
    raw: sys::CUgraph,
}

/// An instantiated graph, ready to launch on streams of the context it was captured in.
pub struct GraphExec {
    raw: sys::CUgraphExec,
}

unsafe impl Send for Graph {}
unsafe impl Send for GraphExec {}
unsafe impl Sync for GraphExec {}

/// Launch configuration and resources of one kernel node.
#[derive(Clone, Debug, Serialize)]
pub struct KernelNodeInfo {
    pub name: String,
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub dynamic_smem_bytes: u32,
    pub static_smem_bytes: i32,
    pub registers: i32,
    pub local_bytes: i32,
    /// Blocks resident per SM at once, from the occupancy calculator.
    pub max_blocks_per_sm: i32,
    /// Resident warps over the SM's maximum, at that residency.
    pub theoretical_occupancy: f64,
}

impl Graph {
    /// Records everything `body` queues on `stream` into a graph (nothing runs).
    pub fn capture(stream: &Stream, body: impl FnOnce(&Stream) -> Result<()>) -> Result<Graph> {
        stream.context().bind()?;
        cu!(cuStreamBeginCapture_v2(stream.raw(), sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL))?;
        let recorded = body(stream);
        let mut raw = std::ptr::null_mut();
        let ended = check(unsafe { sys::cuStreamEndCapture(stream.raw(), &mut raw) }, "cuStreamEndCapture");
        let graph = Graph { raw };
        recorded?;
        ended?;
        Ok(graph)
    }

    pub fn instantiate(&self) -> Result<GraphExec> {
        let mut raw = std::ptr::null_mut();
        cu!(cuGraphInstantiateWithFlags(&mut raw, self.raw, 0))?;
        Ok(GraphExec { raw })
    }

    /// Kernel nodes in topological order of capture (stream order for a single stream).
    pub fn kernel_nodes(&self, max_threads_per_sm: u32) -> Result<Vec<KernelNodeInfo>> {
        let mut count = 0usize;
        cu!(cuGraphGetNodes(self.raw, std::ptr::null_mut(), &mut count))?;
        let mut nodes = vec![std::ptr::null_mut(); count];
        cu!(cuGraphGetNodes(self.raw, nodes.as_mut_ptr(), &mut count))?;
        let mut out = Vec::new();
        for node in nodes.into_iter().take(count) {
            let mut ty = sys::CUgraphNodeType::CU_GRAPH_NODE_TYPE_EMPTY;
            cu!(cuGraphNodeGetType(node, &mut ty))?;
            if ty != sys::CUgraphNodeType::CU_GRAPH_NODE_TYPE_KERNEL {
                continue;
            }
            let mut p: sys::CUDA_KERNEL_NODE_PARAMS_v2 = unsafe { std::mem::zeroed() };
            cu!(cuGraphKernelNodeGetParams_v2(node, &mut p))?;
            let mut func = p.func;
            if func.is_null() && !p.kern.is_null() {
                cu!(cuKernelGetFunction(&mut func, p.kern))?;
            }
            out.push(describe_function(func, &p, max_threads_per_sm)?);
        }
        Ok(out)
    }
}

fn describe_function(
    func: sys::CUfunction,
    p: &sys::CUDA_KERNEL_NODE_PARAMS_v2,
    max_threads_per_sm: u32,
) -> Result<KernelNodeInfo> {
    use sys::CUfunction_attribute as A;
    let attr = |a| -> Result<i32> {
        let mut v = 0;
        cu!(cuFuncGetAttribute(&mut v, a, func))?;
        Ok(v)
    };
    let mut name_ptr = std::ptr::null();
    cu!(cuFuncGetName(&mut name_ptr, func))?;
    let name = if name_ptr.is_null() {
        "?".to_string()
    } else {
        unsafe { CStr::from_ptr(name_ptr) }.to_string_lossy().into_owned()
    };
    let threads = p.blockDimX * p.blockDimY * p.blockDimZ;
    let mut blocks = 0;
    cu!(cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut blocks, func, threads as i32, p.sharedMemBytes as usize))?;
    let warps_per_block = threads.div_ceil(32) as f64;
    let max_warps = (max_threads_per_sm / 32).max(1) as f64;
    Ok(KernelNodeInfo {
        name,
        grid: (p.gridDimX, p.gridDimY, p.gridDimZ),
        block: (p.blockDimX, p.blockDimY, p.blockDimZ),
        dynamic_smem_bytes: p.sharedMemBytes,
        static_smem_bytes: attr(A::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)?,
        registers: attr(A::CU_FUNC_ATTRIBUTE_NUM_REGS)?,
        local_bytes: attr(A::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES)?,
        max_blocks_per_sm: blocks,
        theoretical_occupancy: (blocks as f64 * warps_per_block / max_warps).min(1.0),
    })
}

impl Drop for Graph {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            unsafe {
                sys::cuGraphDestroy(self.raw);
            }
        }
    }
}

impl GraphExec {
    pub fn launch(&self, stream: &Stream) -> Result<()> {
        stream.context().bind()?;
        cu!(cuGraphLaunch(self.raw, stream.raw()))
    }
}

impl Drop for GraphExec {
    fn drop(&mut self) {
        unsafe {
            sys::cuGraphExecDestroy(self.raw);
        }
    }
}
