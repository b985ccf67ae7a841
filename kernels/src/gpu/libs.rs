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

/// Environment variable naming the directory that holds cuDNN (`libcudnn.so.9`).
pub const CUDNN_LIB_DIR_ENV: &str = "COLOC_CUDNN_LIB_DIR";

/// cuDNN 9's sub-libraries, loaded ahead of `libcudnn.so.9` where they sit beside it (the
/// front library opens them by name, which a pip wheel's directory does not answer).
const CUDNN_PARTS: [&str; 7] = [
    "libcudnn_graph.so.9",
    "libcudnn_ops.so.9",
    "libcudnn_cnn.so.9",
    "libcudnn_adv.so.9",
    "libcudnn_engines_precompiled.so.9",
    "libcudnn_engines_runtime_compiled.so.9",
    "libcudnn_heuristic.so.9",
];

/// cuDNN is optional: convolutions fall back to coloc's own paths where it is missing. It is
/// looked for on the loader path, in `$COLOC_CUDNN_LIB_DIR`, the toolkit directories, and the
/// `nvidia/cudnn/lib` of Python environments (where PyTorch's pip wheel puts it).
pub fn require_cudnn() -> Result<()> {
    static CUDNN: OnceLock<Result<(), String>> = OnceLock::new();
    CUDNN
        .get_or_init(|| {
            if unsafe { cudarc::cudnn::sys::is_culib_present() } {
                return Ok(());
            }
            let mut dirs: Vec<PathBuf> = std::env::var_os(CUDNN_LIB_DIR_ENV).map(PathBuf::from).into_iter().collect();
            dirs.extend(search_dirs());
            dirs.extend(python_cudnn_dirs());
            let Some(dir) = dirs.iter().find(|d| d.join("libcudnn.so.9").exists()) else {
                let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                return Err(format!(
                    "libcudnn.so.9 is not on the loader path nor in any of [{}]; set {CUDNN_LIB_DIR_ENV} to its directory",
                    shown.join(", ")
                ));
            };
            let mut held = PRELOADED.lock().unwrap_or_else(|p| p.into_inner());
            for part in CUDNN_PARTS.iter().chain(["libcudnn.so.9"].iter()) {
                let path = dir.join(part);
                if !path.exists() {
                    continue;
                }
                // SAFETY: loading a shared library runs its initialisers; these are NVIDIA's.
                let lib = unsafe {
                    libloading::os::unix::Library::open(Some(&path), libc_flags::RTLD_NOW | libc_flags::RTLD_GLOBAL)
                }
                .map_err(|e| format!("{}: {e}", path.display()))?;
                held.push(lib);
            }
            drop(held);
            if unsafe { cudarc::cudnn::sys::is_culib_present() } {
                Ok(())
            } else {
                Err(format!("loaded {} but cudarc still cannot open libcudnn", dir.display()))
            }
        })
        .clone()
        .map_err(|detail| Error::MissingLibrary { what: "cuDNN (libcudnn.so.9)", detail })
}

/// Whether cuDNN loads on this machine (looked for once per process).
pub fn cudnn_present() -> bool {
    require_cudnn().is_ok()
}

/// `nvidia/cudnn/lib` under the Python environments of this machine: `$VIRTUAL_ENV`,
/// `/opt/*/.venv` and `/opt/*/venv`, and the system's `site-packages`/`dist-packages`.
fn python_cudnn_dirs() -> Vec<PathBuf> {
    let mut envs: Vec<PathBuf> = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from).into_iter().collect();
    if let Ok(entries) = std::fs::read_dir("/opt") {
        for e in entries.flatten() {
            envs.push(e.path().join(".venv"));
            envs.push(e.path().join("venv"));
        }
    }
    envs.extend(["/usr/local", "/usr"].map(PathBuf::from));
    let mut dirs = Vec::new();
    for env in envs {
        let Ok(libs) = std::fs::read_dir(env.join("lib")) else { continue };
        let mut pythons: Vec<PathBuf> = libs
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python3")))
            .collect();
        pythons.sort();
        for py in pythons.into_iter().rev() {
            for packages in ["site-packages", "dist-packages"] {
                dirs.push(py.join(packages).join("nvidia/cudnn/lib"));
            }
        }
    }
    dirs
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
