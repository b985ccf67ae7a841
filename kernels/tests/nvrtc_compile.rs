//! Every CUDA module compiles with NVRTC for Hopper, every kernel the Rust side names exists
//! in the PTX, and the disk cache serves a second compile. Needs NVRTC (not a GPU): the
//! set-up script unpacks it into `.deps/cuda/lib` of the repository.

use std::path::PathBuf;

use coloc_kernels::gpu::{libs, nvrtc};
use coloc_kernels::id::{CudaModule, KernelId};

fn nvrtc_available() {
    let repo_deps = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.deps/cuda/lib");
    libs::add_search_dir(repo_deps);
    if let Err(e) = libs::require_nvrtc() {
        panic!("{e}\nrun `bash ci/setup.sh` once to unpack NVRTC into .deps/cuda/lib");
    }
}

#[test]
fn every_module_compiles_for_sm90_and_contains_every_named_kernel() {
    nvrtc_available();
    for module in CudaModule::ALL {
        let arch = module.arch_for((9, 0)).expect("every module builds for Hopper");
        let out = nvrtc::compile(module, &arch, 13000, true).unwrap_or_else(|e| panic!("{e}"));
        assert!(!out.cubin.is_empty(), "{module:?}: empty cubin");
        let ptx = out.ptx.expect("asked for PTX");
        for id in KernelId::ALL.iter().filter(|id| id.module() == module) {
            for sym in id.symbols() {
                let entry = format!(".entry {}(", sym.c_name());
                assert!(ptx.contains(&entry), "{module:?} has no {entry}");
            }
        }
    }
}

#[test]
fn the_tensor_probe_uses_wgmma_and_plain_modules_do_not() {
    nvrtc_available();
    let probe = nvrtc::compile(CudaModule::TensorPeak, "sm_90a", 13000, true).unwrap();
    assert!(probe.ptx.unwrap().contains("wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16"));
    let norm = nvrtc::compile(CudaModule::Norm, "sm_90", 13000, true).unwrap();
    assert!(!norm.ptx.unwrap().contains("wgmma"));
}

#[test]
fn a_second_compile_comes_from_the_disk_cache() {
    nvrtc_available();
    let dir = std::env::temp_dir().join(format!("coloc-cache-test-{}", std::process::id()));
    // The cache directory is read from the environment at each compile.
    unsafe { std::env::set_var("COLOC_CACHE_DIR", &dir) };
    let first = nvrtc::compile(CudaModule::Probes, "sm_90", 13000, false).unwrap();
    let second = nvrtc::compile(CudaModule::Probes, "sm_90", 13000, false).unwrap();
    let other_driver = nvrtc::compile(CudaModule::Probes, "sm_90", 13010, false).unwrap();
    unsafe { std::env::remove_var("COLOC_CACHE_DIR") };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert_eq!(first.cubin, second.cubin);
    assert!(!other_driver.from_cache, "a different driver version must not hit the cache");
}
