//! Device memory, pinned host memory and copies.

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::sys;

use super::context::Stream;
use super::device::Device;
use super::driver::{check, cu};
use crate::error::{Error, Result};

/// A device allocation (in the primary context, so every green context can use it).
pub struct DeviceBuffer {
    device: Arc<Device>,
    ptr: sys::CUdeviceptr,
    bytes: usize,
}

unsafe impl Send for DeviceBuffer {}
unsafe impl Sync for DeviceBuffer {}

impl DeviceBuffer {
    /// Allocates `bytes` (at least 1); `what` names the allocation in an out-of-memory error.
    pub fn alloc(device: &Arc<Device>, bytes: usize, what: &str) -> Result<DeviceBuffer> {
        device.bind()?;
        let mut ptr = 0;
        let r = unsafe { sys::cuMemAlloc_v2(&mut ptr, bytes.max(1)) };
        if r == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            return Err(Error::OutOfMemory { what: what.to_string(), bytes });
        }
        check(r, "cuMemAlloc_v2")?;
        Ok(DeviceBuffer { device: device.clone(), ptr, bytes })
    }

    pub fn ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// Synchronous copy from host; `data` must fit.
    pub fn upload<T: Copy>(&self, data: &[T]) -> Result<()> {
        let n = std::mem::size_of_val(data);
        assert!(n <= self.bytes, "upload of {n} bytes into a {}-byte buffer", self.bytes);
        self.device.bind()?;
        cu!(cuMemcpyHtoD_v2(self.ptr, data.as_ptr() as *const c_void, n))
    }

    /// Synchronous copy of the first `count` elements to the host.
    pub fn download<T: Copy + Default>(&self, count: usize) -> Result<Vec<T>> {
        let n = count * std::mem::size_of::<T>();
        assert!(n <= self.bytes, "download of {n} bytes from a {}-byte buffer", self.bytes);
        let mut out = vec![T::default(); count];
        self.device.bind()?;
        cu!(cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, self.ptr, n))?;
        Ok(out)
    }

    /// Sets every byte, queued on `stream`.
    pub fn fill_bytes_async(&self, value: u8, stream: &Stream) -> Result<()> {
        stream.context().bind()?;
        cu!(cuMemsetD8Async(self.ptr, value, self.bytes, stream.raw()))
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        unsafe {
            sys::cuCtxSetCurrent(self.device.primary_context());
            sys::cuMemFree_v2(self.ptr);
        }
    }
}

/// Zeroes `words` 32-bit words at `ptr`, queued on `stream`.
pub fn zero_words_async(ptr: sys::CUdeviceptr, words: usize, stream: &Stream) -> Result<()> {
    cu!(cuMemsetD32Async(ptr, 0, words, stream.raw()))
}

/// Device-to-device copy queued on `stream`.
pub fn copy_async(dst: sys::CUdeviceptr, src: sys::CUdeviceptr, bytes: usize, stream: &Stream) -> Result<()> {
    cu!(cuMemcpyDtoDAsync_v2(dst, src, bytes, stream.raw()))
}

/// Device-to-host copy into pinned memory, queued on `stream`.
pub fn download_async(
    dst: &PinnedBuffer,
    dst_offset: usize,
    src: sys::CUdeviceptr,
    bytes: usize,
    stream: &Stream,
) -> Result<()> {
    assert!(dst_offset + bytes <= dst.bytes, "async download past the end of a pinned buffer");
    let host = unsafe { (dst.host as *mut u8).add(dst_offset) } as *mut c_void;
    cu!(cuMemcpyDtoHAsync_v2(host, src, bytes, stream.raw()))
}

/// Page-locked host memory, also mapped into the device address space.
pub struct PinnedBuffer {
    device: Arc<Device>,
    host: *mut c_void,
    bytes: usize,
}

unsafe impl Send for PinnedBuffer {}
unsafe impl Sync for PinnedBuffer {}

impl PinnedBuffer {
    pub fn alloc(device: &Arc<Device>, bytes: usize) -> Result<PinnedBuffer> {
        device.bind()?;
        let mut host = std::ptr::null_mut();
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        cu!(cuMemHostAlloc(&mut host, bytes.max(1), flags))?;
        unsafe { std::ptr::write_bytes(host as *mut u8, 0, bytes.max(1)) };
        Ok(PinnedBuffer { device: device.clone(), host, bytes })
    }

    /// The device-side address of the mapping.
    pub fn device_ptr(&self) -> Result<sys::CUdeviceptr> {
        self.device.bind()?;
        let mut d = 0;
        cu!(cuMemHostGetDevicePointer_v2(&mut d, self.host, 0))?;
        Ok(d)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reads element `i` of the buffer seen as `[T]` (volatile: the device may write it).
    pub fn read<T: Copy>(&self, i: usize) -> T {
        assert!((i + 1) * std::mem::size_of::<T>() <= self.bytes);
        unsafe { std::ptr::read_volatile((self.host as *const T).add(i)) }
    }

    /// Writes element `i` of the buffer seen as `[T]` (volatile: the device may read it).
    pub fn write<T: Copy>(&self, i: usize, v: T) {
        assert!((i + 1) * std::mem::size_of::<T>() <= self.bytes);
        unsafe { std::ptr::write_volatile((self.host as *mut T).add(i), v) }
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        unsafe {
            sys::cuCtxSetCurrent(self.device.primary_context());
            sys::cuMemFreeHost(self.host);
        }
    }
}
