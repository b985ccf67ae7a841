//! cuDNN is optional and found where PyTorch's wheel puts it: a Python environment's
//! `nvidia/cudnn/lib`. One test in its own process, because the search runs once per process.

use std::path::PathBuf;

use coloc_kernels::gpu::libs;

#[test]
fn cudnn_is_looked_for_in_python_environments_and_a_bad_one_is_named() {
    // SAFETY: only tries to open the library by its names.
    if unsafe { cudarc::cudnn::sys::is_culib_present() } {
        // A machine with cuDNN on the loader path uses it as it is.
        assert!(libs::cudnn_present());
        assert!(coloc_kernels::gpu::Dnn::version().unwrap() >= 90000);
        return;
    }
    let venv: PathBuf = std::env::temp_dir().join(format!("coloc-cudnn-discovery-{}", std::process::id()));
    let lib = venv.join("lib/python3.12/site-packages/nvidia/cudnn/lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libcudnn.so.9"), b"not a shared library").unwrap();
    // SAFETY: this test binary runs this one test; no other thread reads the environment.
    unsafe {
        std::env::set_var("VIRTUAL_ENV", &venv);
        std::env::remove_var(libs::CUDNN_LIB_DIR_ENV);
    }
    let err = libs::require_cudnn().unwrap_err().to_string();
    assert!(err.contains("cuDNN (libcudnn.so.9)"), "{err}");
    assert!(err.contains(&lib.join("libcudnn.so.9").display().to_string()), "the bad library is named: {err}");
    assert!(!libs::cudnn_present());
    // convolutions then take coloc's own paths, and a cuDNN-only call says why
    let err = coloc_kernels::gpu::Dnn::version().unwrap_err().to_string();
    assert!(err.contains("libcudnn.so.9"), "{err}");
    std::fs::remove_dir_all(&venv).unwrap();
}
