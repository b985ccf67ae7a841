//! Checked calls into the CUDA driver API.

use std::ffi::CStr;

use cudarc::driver::sys;

use crate::error::{Error, Result};

/// Turns a driver return code into a `Result`, naming the call that failed.
pub fn check(res: sys::CUresult, call: &'static str) -> Result<()> {
    if res == sys::CUresult::CUDA_SUCCESS {
        return Ok(());
    }
    let (name, message) = describe(res);
    Err(Error::Driver { call, code: res as u32, name, message })
}

/// The driver's own name and description of a return code.
pub fn describe(res: sys::CUresult) -> (String, String) {
    let mut name = std::ptr::null();
    let mut text = std::ptr::null();
    unsafe {
        sys::cuGetErrorName(res, &mut name);
        sys::cuGetErrorString(res, &mut text);
    }
    let read = |p: *const std::ffi::c_char| {
        if p.is_null() {
            format!("CUresult {}", res as u32)
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    (read(name), read(text))
}

/// `cu!(cuFoo(a, b))` calls `sys::cuFoo(a, b)` and checks its result.
macro_rules! cu {
    ($f:ident ( $($arg:expr),* $(,)? )) => {
        $crate::gpu::driver::check(unsafe { cudarc::driver::sys::$f($($arg),*) }, stringify!($f))
    };
}
pub(crate) use cu;
