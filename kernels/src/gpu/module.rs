//! The kernel library: modules compiled once per process, loaded context-independently with
//! `cuLibraryLoadData`, so one loaded kernel launches in the primary context and in every
//! green context alike (a module loaded into one context cannot launch in another).

use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::sync::{Arc, Mutex};

use cudarc::driver::sys;
use serde::Serialize;

use super::context::Stream;
use super::device::Device;
use super::driver::cu;
use super::nvrtc;
use crate::error::{Error, Result};
use crate::id::{CudaModule, KernelSymbol};

/// How one module was obtained, for reports.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleLoad {
    pub module: CudaModule,
    pub arch: String,
    pub from_cache: bool,
    pub compile_seconds: f64,
}

pub struct KernelLibrary {
    device: Arc<Device>,
    state: Mutex<LibraryState>,
}

#[derive(Default)]
struct LibraryState {
    libraries: HashMap<CudaModule, sys::CUlibrary>,
    kernels: HashMap<KernelSymbol, Kernel>,
    loads: Vec<ModuleLoad>,
}

unsafe impl Send for LibraryState {}

impl KernelLibrary {
    pub fn new(device: &Arc<Device>) -> Arc<KernelLibrary> {
        Arc::new(KernelLibrary { device: device.clone(), state: Mutex::new(LibraryState::default()) })
    }

    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// Compiles and loads `modules` now, so that compilation never lands inside a timing.
    pub fn preload(&self, modules: &[CudaModule]) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for m in modules {
            self.ensure_module(&mut st, *m)?;
        }
        Ok(())
    }

    /// The loaded kernel for `sym`, compiling its module on first use.
    pub fn kernel(&self, sym: KernelSymbol) -> Result<Kernel> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = st.kernels.get(&sym) {
            return Ok(k.clone());
        }
        let lib = self.ensure_module(&mut st, sym.id.module())?;
        let name = sym.c_name();
        let cname = CString::new(name.clone()).expect("kernel name has no NUL");
        let mut raw = std::ptr::null_mut();
        cu!(cuLibraryGetKernel(&mut raw, lib, cname.as_ptr()))?;
        let k = Kernel { raw, symbol: sym, name: Arc::from(name.as_str()), device: self.device.raw() };
        st.kernels.insert(sym, k.clone());
        Ok(k)
    }

    /// Modules loaded so far, with whether each came from the disk cache.
    pub fn loads(&self) -> Vec<ModuleLoad> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).loads.clone()
    }

    fn ensure_module(&self, st: &mut LibraryState, module: CudaModule) -> Result<sys::CUlibrary> {
        if let Some(lib) = st.libraries.get(&module) {
            return Ok(*lib);
        }
        let info = self.device.info();
        let arch = module.arch_for(info.compute_capability).ok_or_else(|| {
            Error::invalid(
                module.file_name(),
                format!("needs {}; this device is {}", module.requirement(), info.arch()),
            )
        })?;
        let compiled = nvrtc::compile(module, &arch, info.driver_api_version, false)?;
        self.device.bind()?;
        let mut lib = std::ptr::null_mut();
        cu!(cuLibraryLoadData(
            &mut lib,
            compiled.cubin.as_ptr() as *const c_void,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0
        ))?;
        st.libraries.insert(module, lib);
        st.loads.push(ModuleLoad { module, arch, from_cache: compiled.from_cache, compile_seconds: compiled.seconds });
        Ok(lib)
    }
}

impl Drop for KernelLibrary {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        for lib in st.libraries.values() {
            unsafe {
                sys::cuLibraryUnload(*lib);
            }
        }
    }
}

/// A loaded, context-independent kernel.
#[derive(Clone)]
pub struct Kernel {
    raw: sys::CUkernel,
    symbol: KernelSymbol,
    name: Arc<str>,
    device: sys::CUdevice,
}

unsafe impl Send for Kernel {}
unsafe impl Sync for Kernel {}

/// Grid and block shape of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LaunchConfig {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub dynamic_smem: u32,
}

impl LaunchConfig {
    pub fn new(grid: (u32, u32, u32), block: (u32, u32, u32)) -> Self {
        LaunchConfig { grid, block, dynamic_smem: 0 }
    }

    /// A 1-D launch for grid-stride kernels: enough blocks for `work` threads, at most
    /// `max_blocks`.
    pub fn grid_stride(work: u64, block: u32, max_blocks: u32) -> Self {
        let blocks = work.div_ceil(block as u64).clamp(1, max_blocks.max(1) as u64) as u32;
        LaunchConfig::new((blocks, 1, 1), (block, 1, 1))
    }

    pub fn threads_per_block(&self) -> u32 {
        self.block.0 * self.block.1 * self.block.2
    }

    pub fn blocks(&self) -> u64 {
        self.grid.0 as u64 * self.grid.1 as u64 * self.grid.2 as u64
    }
}

/// Arguments of one launch. Each value occupies its own 8-byte slot; the driver reads as many
/// bytes as the kernel's parameter has, from the slot's start (little-endian).
#[derive(Default, Clone)]
pub struct KernelArgs {
    slots: Vec<u64>,
}

impl KernelArgs {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn ptr(mut self, p: u64) -> Self {
        self.slots.push(p);
        self
    }
    pub fn i32(mut self, v: i32) -> Self {
        self.slots.push(v as u32 as u64);
        self
    }
    pub fn i64(mut self, v: i64) -> Self {
        self.slots.push(v as u64);
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.slots.push(v);
        self
    }
    pub fn f32(mut self, v: f32) -> Self {
        self.slots.push(v.to_bits() as u64);
        self
    }
}

/// Driver-reported resources of a compiled kernel.
#[derive(Clone, Debug, Serialize)]
pub struct KernelAttributes {
    pub registers: i32,
    pub static_smem_bytes: i32,
    pub local_bytes: i32,
    pub max_threads_per_block: i32,
}

impl Kernel {
    pub fn symbol(&self) -> KernelSymbol {
        self.symbol
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues the kernel on `stream` (binding the stream's context first).
    pub fn launch(&self, stream: &Stream, cfg: LaunchConfig, args: &mut KernelArgs) -> Result<()> {
        stream.context().bind()?;
        let mut params: Vec<*mut c_void> = args.slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect();
        cu!(cuLaunchKernel(
            self.raw as sys::CUfunction,
            cfg.grid.0,
            cfg.grid.1,
            cfg.grid.2,
            cfg.block.0,
            cfg.block.1,
            cfg.block.2,
            cfg.dynamic_smem,
            stream.raw(),
            params.as_mut_ptr(),
            std::ptr::null_mut()
        ))
    }

    pub fn attributes(&self) -> Result<KernelAttributes> {
        use sys::CUfunction_attribute as A;
        let get = |attr| -> Result<i32> {
            let mut v = 0;
            cu!(cuKernelGetAttribute(&mut v, attr, self.raw, self.device))?;
            Ok(v)
        };
        Ok(KernelAttributes {
            registers: get(A::CU_FUNC_ATTRIBUTE_NUM_REGS)?,
            static_smem_bytes: get(A::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)?,
            local_bytes: get(A::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES)?,
            max_threads_per_block: get(A::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
        })
    }

    /// Blocks of `block_threads` threads that fit on one SM at once (in the current context).
    pub fn max_active_blocks_per_sm(&self, block_threads: u32, dynamic_smem: u32) -> Result<u32> {
        let mut f = std::ptr::null_mut();
        cu!(cuKernelGetFunction(&mut f, self.raw))?;
        let mut n = 0;
        cu!(cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut n, f, block_threads as i32, dynamic_smem as usize))?;
        Ok(n.max(0) as u32)
    }
}
