//! Finds the CUDA shared libraries before cudarc touches them. cudarc loads them lazily and
//! panics when one is missing; coloc checks first and reports a missing library in one line.
//!
//! The driver (libcuda) must be on the loader path, as the NVIDIA driver installs it. NVRTC
//! and cuBLAS come with the CUDA toolkit, which often lives outside the loader path
//! (`/usr/local/cuda/lib64`); when the plain name does not load, they are looked for in
//! `$COLOC_CUDA_LIB_DIR`, `$CUDA_HOME/lib64`, `$CUDA_PATH/lib64` and `/usr/local/cuda*/lib64`,
//! and loaded from there by full path. The dynamic loader then hands cudarc the already
//! loaded copy when it asks for the same soname.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// Environment variable naming an extra directory that holds NVRTC and cuBLAS.
pub const CUDA_LIB_DIR_ENV: &str = "COLOC_CUDA_LIB_DIR";

/// Directories added at run time (tests point here at a toolkit unpacked in the repository).
static EXTRA_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Adds a directory to search for NVRTC and cuBLAS, before the standard ones. Takes effect
/// for libraries not loaded yet.
pub fn add_search_dir(dir: impl Into<PathBuf>) {
    EXTRA_DIRS.lock().unwrap_or_else(|p| p.into_inner()).push(dir.into());
}

/// Libraries loaded by full path; kept open for the life of the process.
static PRELOADED: Mutex<Vec<libloading::os::unix::Library>> = Mutex::new(Vec::new());

/// The NVIDIA driver must be loadable, or no GPU command can run.
pub fn require_driver() -> Result<()> {
    static DRIVER: OnceLock<bool> = OnceLock::new();
    let present = *DRIVER.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() });
    if present {
        Ok(())
    } else {
        Err(Error::MissingLibrary {
            what: "NVIDIA driver (libcuda.so.1)",
            detail: "this machine has no NVIDIA GPU driver; run GPU commands on a GPU machine".into(),
        })
    }
}

/// NVRTC (and its builtins library) must be loadable to compile coloc's kernels.
pub fn require_nvrtc() -> Result<()> {
    static NVRTC: OnceLock<Result<(), String>> = OnceLock::new();
    NVRTC
        .get_or_init(|| {
            if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                return Ok(());
            }
            let major = cuda_major();
            preload_from_dirs(&[&format!("libnvrtc-builtins.so.{major}.0"), &format!("libnvrtc.so.{major}")])?;
            if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                Ok(())
            } else {
                Err("preloaded but cudarc still cannot open it".into())
            }
        })
        .clone()
        .map_err(|detail| Error::MissingLibrary { what: "NVRTC (libnvrtc.so)", detail })
}

/// cuBLAS (and cuBLASLt, which it links against) must be loadable for GEMMs.
pub fn require_cublas() -> Result<()> {
    static CUBLAS: OnceLock<Result<(), String>> = OnceLock::new();
    CUBLAS
        .get_or_init(|| {
            if unsafe { cudarc::cublas::sys::is_culib_present() } {
                return Ok(());
            }
            let major = cuda_major();
            preload_from_dirs(&[&format!("libcublasLt.so.{major}"), &format!("libcublas.so.{major}")])?;
            if unsafe { cudarc::cublas::sys::is_culib_present() } {
                Ok(())
            } else {
                Err("preloaded but cudarc still cannot open it".into())
            }
        })
        .clone()
        .map_err(|detail| Error::MissingLibrary { what: "cuBLAS (libcublas.so)", detail })
}

/// The CUDA major version the bindings were generated for (13 for `cuda-13000`).
fn cuda_major() -> u32 {
    13
}

/// Directories searched for toolkit libraries, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = EXTRA_DIRS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(d) = std::env::var_os(CUDA_LIB_DIR_ENV) {
        dirs.push(PathBuf::from(d));
    }
    for var in ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"] {
        if let Some(root) = std::env::var_os(var) {
            dirs.push(Path::new(&root).join("lib64"));
            dirs.push(Path::new(&root).join("lib"));
        }
    }
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    dirs.push(PathBuf::from("/usr/local/cuda/targets/x86_64-linux/lib"));
    if let Ok(entries) = std::fs::read_dir("/usr/local") {
        let mut versioned: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("cuda-")))
            .map(|p| p.join("lib64"))
            .collect();
        versioned.sort();
        versioned.reverse();
        dirs.extend(versioned);
    }
    dirs
}

/// Loads each file (in order) from the first directory that has all of them.
fn preload_from_dirs(files: &[&str]) -> Result<(), String> {
    let dirs = search_dirs();
    for dir in &dirs {
        if !files.iter().all(|f| dir.join(f).exists()) {
            continue;
        }
        let mut held = PRELOADED.lock().unwrap_or_else(|p| p.into_inner());
        for f in files {
            let path = dir.join(f);
            // RTLD_NOW | RTLD_GLOBAL: resolve now, and let later loads by soname find it.
            let lib = unsafe {
                libloading::os::unix::Library::open(Some(&path), libc_flags::RTLD_NOW | libc_flags::RTLD_GLOBAL)
            }
            .map_err(|e| format!("{}: {e}", path.display()))?;
            held.push(lib);
        }
        return Ok(());
    }
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "{} is not on the loader path nor in any of [{}]; set {CUDA_LIB_DIR_ENV} to the directory that has it",
        files.last().copied().unwrap_or_default(),
        shown.join(", ")
    ))
}

/// dlopen flags (glibc values), kept here rather than pulling in the libc crate.
mod libc_flags {
    pub const RTLD_NOW: i32 = 0x2;
    pub const RTLD_GLOBAL: i32 = 0x100;
}
