//! Run-time compilation of coloc's CUDA modules with NVRTC, and the on-disk cubin cache.
//!
//! Each module is compiled to a cubin for the device's own architecture (sm_XY, or sm_90a for
//! the tensor probe). A compiled cubin is kept in memory by the kernel library and on disk under
//! `$COLOC_CACHE_DIR` (default `$XDG_CACHE_HOME/coloc/kernels`, then `~/.cache/coloc/kernels`),
//! keyed by a hash of the source text, the target architecture, the NVRTC version, the driver
//! version and the compile options, so a change to any of them compiles afresh.

use std::ffi::{CString, c_char, c_int};
use std::path::PathBuf;
use std::time::Instant;

use cudarc::nvrtc::sys as nvrtc;

use super::libs;
use crate::error::{Error, Result};
use crate::id::{COMMON_HEADER, CudaModule};

/// Options every module is compiled with (besides the architecture).
const OPTIONS: [&str; 2] = ["--std=c++17", "-lineinfo"];

/// What compiling one module produced.
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub ptx: Option<String>,
    pub from_cache: bool,
    pub seconds: f64,
}

/// NVRTC's version as (major, minor).
pub fn version() -> Result<(i32, i32)> {
    libs::require_nvrtc()?;
    let (mut major, mut minor) = (0, 0);
    let r = unsafe { nvrtc::nvrtcVersion(&mut major, &mut minor) };
    check(r, "nvrtcVersion", CudaModule::Probes, "")?;
    Ok((major, minor))
}

/// Architectures NVRTC can target, e.g. [75, 80, ..., 90, 100, ...].
pub fn supported_archs() -> Result<Vec<i32>> {
    libs::require_nvrtc()?;
    let mut n: c_int = 0;
    unsafe { nvrtc::nvrtcGetNumSupportedArchs(&mut n) };
    let mut archs = vec![0 as c_int; n.max(0) as usize];
    unsafe { nvrtc::nvrtcGetSupportedArchs(archs.as_mut_ptr()) };
    Ok(archs)
}

/// The full source NVRTC sees for `module`.
pub fn full_source(module: CudaModule) -> String {
    format!("{COMMON_HEADER}\n#line 1 \"{}\"\n{}", module.file_name(), module.source())
}

/// Compiles `module` for `arch` (e.g. "sm_90"), through the disk cache unless `with_ptx` asks
/// for the PTX text too (used by tests and `coloc kernels list --ptx`).
pub fn compile(module: CudaModule, arch: &str, driver_version: u32, with_ptx: bool) -> Result<Compiled> {
    let nvrtc_version = version()?;
    let source = full_source(module);
    let key = cache_key(&source, arch, nvrtc_version, driver_version);
    let cached = cache_path(module, arch, key);
    if !with_ptx {
        if let Some(path) = &cached {
            if let Ok(cubin) = std::fs::read(path) {
                return Ok(Compiled { cubin, ptx: None, from_cache: true, seconds: 0.0 });
            }
        }
    }
    let started = Instant::now();
    let (cubin, ptx) = run_nvrtc(module, arch, &source, with_ptx)?;
    if let Some(path) = cached {
        store(&path, &cubin);
    }
    Ok(Compiled { cubin, ptx, from_cache: false, seconds: started.elapsed().as_secs_f64() })
}

fn run_nvrtc(module: CudaModule, arch: &str, source: &str, with_ptx: bool) -> Result<(Vec<u8>, Option<String>)> {
    let src = CString::new(source).expect("CUDA source has no NUL");
    let name = CString::new(module.file_name()).expect("file name has no NUL");
    let mut prog: nvrtc::nvrtcProgram = std::ptr::null_mut();
    let r = unsafe {
        nvrtc::nvrtcCreateProgram(&mut prog, src.as_ptr(), name.as_ptr(), 0, std::ptr::null(), std::ptr::null())
    };
    check(r, "nvrtcCreateProgram", module, arch)?;
    let result = (|| {
        let mut opts: Vec<CString> = vec![CString::new(format!("--gpu-architecture={arch}")).unwrap()];
        opts.extend(OPTIONS.iter().map(|o| CString::new(*o).unwrap()));
        let ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        let r = unsafe { nvrtc::nvrtcCompileProgram(prog, ptrs.len() as c_int, ptrs.as_ptr()) };
        if r != nvrtc::nvrtcResult::NVRTC_SUCCESS {
            return Err(Error::Compile { module: module.file_name(), arch: arch.to_string(), log: program_log(prog) });
        }
        let mut size = 0usize;
        check(unsafe { nvrtc::nvrtcGetCUBINSize(prog, &mut size) }, "nvrtcGetCUBINSize", module, arch)?;
        let mut cubin = vec![0u8; size];
        check(unsafe { nvrtc::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut c_char) }, "nvrtcGetCUBIN", module, arch)?;
        let ptx = if with_ptx {
            let mut size = 0usize;
            check(unsafe { nvrtc::nvrtcGetPTXSize(prog, &mut size) }, "nvrtcGetPTXSize", module, arch)?;
            let mut text = vec![0u8; size];
            check(unsafe { nvrtc::nvrtcGetPTX(prog, text.as_mut_ptr() as *mut c_char) }, "nvrtcGetPTX", module, arch)?;
            text.retain(|b| *b != 0);
            Some(String::from_utf8_lossy(&text).into_owned())
        } else {
            None
        };
        Ok((cubin, ptx))
    })();
    unsafe { nvrtc::nvrtcDestroyProgram(&mut prog) };
    result
}

fn program_log(prog: nvrtc::nvrtcProgram) -> String {
    let mut size = 0usize;
    unsafe { nvrtc::nvrtcGetProgramLogSize(prog, &mut size) };
    let mut log = vec![0u8; size.max(1)];
    unsafe { nvrtc::nvrtcGetProgramLog(prog, log.as_mut_ptr() as *mut c_char) };
    log.retain(|b| *b != 0);
    String::from_utf8_lossy(&log).trim().to_string()
}

fn check(r: nvrtc::nvrtcResult, call: &'static str, module: CudaModule, arch: &str) -> Result<()> {
    if r == nvrtc::nvrtcResult::NVRTC_SUCCESS {
        return Ok(());
    }
    let text = unsafe { std::ffi::CStr::from_ptr(nvrtc::nvrtcGetErrorString(r)) }.to_string_lossy().into_owned();
    Err(Error::Compile { module: module.file_name(), arch: arch.to_string(), log: format!("{call}: {text}") })
}

/// FNV-1a over everything that decides the compiled bytes.
pub fn cache_key(source: &str, arch: &str, nvrtc_version: (i32, i32), driver_version: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    feed(source.as_bytes());
    feed(arch.as_bytes());
    feed(format!("{}.{}", nvrtc_version.0, nvrtc_version.1).as_bytes());
    feed(driver_version.to_string().as_bytes());
    feed(OPTIONS.join(" ").as_bytes());
    h
}

/// Where cubins are cached; `None` when no cache directory can be found.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("COLOC_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("coloc").join("kernels"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("coloc").join("kernels"))
}

fn cache_path(module: CudaModule, arch: &str, key: u64) -> Option<PathBuf> {
    let stem = module.file_name().trim_end_matches(".cu");
    cache_dir().map(|d| d.join(format!("{stem}-{arch}-{key:016x}.cubin")))
}

/// Best-effort write (a read-only home only costs a recompile): temp file, then rename, so a
/// concurrent reader never sees half a cubin.
fn store(path: &std::path::Path, cubin: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, cubin).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_changes_with_every_input() {
        let base = cache_key("src", "sm_90", (13, 0), 13000);
        assert_ne!(base, cache_key("src2", "sm_90", (13, 0), 13000));
        assert_ne!(base, cache_key("src", "sm_90a", (13, 0), 13000));
        assert_ne!(base, cache_key("src", "sm_90", (13, 1), 13000));
        assert_ne!(base, cache_key("src", "sm_90", (13, 0), 13010));
        assert_eq!(base, cache_key("src", "sm_90", (13, 0), 13000));
    }

    #[test]
    fn full_source_starts_with_the_common_header() {
        let s = full_source(CudaModule::Norm);
        assert!(s.starts_with(COMMON_HEADER));
        assert!(s.contains("#line 1 \"norm.cu\""));
    }
}
