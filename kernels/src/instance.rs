//! An operator with its operands allocated on the device, filled, launchable and readable.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{Device, DeviceBuffer, KernelArgs};
use crate::id::{KernelId, KernelSymbol};
use crate::ops::{Bindings, HostTensor, HostTensors, Init, LaunchEnv, Op, OpSpec, Operand, Role, StampSlots};
use crate::ops::{CHASE_A, CHASE_C};
use crate::types::{DType, ElemType};

/// One allocated operand.
pub struct Tensor {
    pub operand: Operand,
    pub buffer: DeviceBuffer,
}

/// An operator and its device tensors.
pub struct OpInstance {
    pub op: Op,
    pub tensors: Vec<Tensor>,
    bindings: Bindings,
}

impl OpInstance {
    /// Validates `op` and allocates every operand; an allocation that fails names the operand.
    pub fn allocate(device: &Arc<Device>, op: Op) -> Result<OpInstance> {
        op.validate()?;
        let mut tensors = Vec::new();
        let mut bindings = Bindings::new();
        for operand in op.operands() {
            let what = format!("operand `{}` of {}", operand.name, op.label());
            let buffer = DeviceBuffer::alloc(device, operand.bytes(), &what)?;
            bindings.bind(operand.name, buffer.ptr());
            tensors.push(Tensor { operand, buffer });
        }
        Ok(OpInstance { op, tensors, bindings })
    }

    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Total bytes of all operands.
    pub fn bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.buffer.bytes()).sum()
    }

    /// Fills inputs, weights and in/out tensors from `seed` (each operand its own stream of
    /// numbers) and poisons outputs and workspaces with all-ones bytes (NaN in f32 and bf16),
    /// so an element the operator fails to write cannot pass a check.
    pub fn fill(&self, env: &LaunchEnv, seed: u64) -> Result<()> {
        for (i, t) in self.tensors.iter().enumerate() {
            fill_operand(
                env,
                &t.operand,
                &t.buffer,
                splitmix64(seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            )?;
        }
        Ok(())
    }

    pub fn launch(&self, env: &LaunchEnv, slots: StampSlots) -> Result<()> {
        self.op.launch(env, &self.bindings, slots)
    }

    /// Copies operands with the given roles to the host (synchronous).
    pub fn download(&self, roles: &[Role]) -> Result<HostTensors> {
        let mut out = HostTensors::new();
        for t in self.tensors.iter().filter(|t| roles.contains(&t.operand.role)) {
            out.insert(t.operand.name, download(t)?);
        }
        Ok(out)
    }
}

/// One operand's contents on the host, as f64.
pub fn download(t: &Tensor) -> Result<HostTensor> {
    let raw: Vec<u8> = t.buffer.download(t.operand.bytes())?;
    Ok(HostTensor { shape: t.operand.shape.clone(), data: t.operand.elem.decode(&raw) })
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Fills one buffer as operand `o` asks (random, ids, chase table, small integers, or poison).
pub fn fill_operand(env: &LaunchEnv, o: &Operand, buf: &DeviceBuffer, seed: u64) -> Result<()> {
    let n = o.len() as u64;
    match (o.init, o.role) {
        (_, Role::Output | Role::Workspace) | (Init::Poison, _) => buf.fill_bytes_async(0xff, env.stream),
        (Init::Uniform { lo, hi }, _) => {
            let dtype = match o.elem {
                ElemType::F32 => DType::F32,
                ElemType::Bf16 => DType::Bf16,
                other => return Err(Error::invalid(o.name, format!("uniform fill of {other:?}"))),
            };
            let args = KernelArgs::new().ptr(buf.ptr()).i64(n as i64).u64(seed).f32(lo).f32(hi);
            env.launch_1d(KernelSymbol::typed(KernelId::FillUniform, dtype), n, args)
        }
        (Init::Ids { vocab }, _) => {
            let args = KernelArgs::new().ptr(buf.ptr()).i64(n as i64).u64(seed).i32(vocab as i32);
            env.launch_1d(KernelSymbol::plain(KernelId::FillIds), n, args)
        }
        (Init::Chase, _) => {
            let args = KernelArgs::new().ptr(buf.ptr()).i64(n as i64).u64(CHASE_A).u64(CHASE_C);
            env.launch_1d(KernelSymbol::plain(KernelId::FillChase), n, args)
        }
        (Init::Iota { modulo }, _) => {
            env.stream.synchronize()?;
            let host: Vec<f32> = (0..n).map(|i| (i % modulo as u64) as f32).collect();
            buf.upload(&host)
        }
    }
}

/// Makes sure every kernel `op` uses (and the fills) are compiled before any timing.
pub fn prepare(env: &LaunchEnv, op: &Op) -> Result<()> {
    for sym in op.kernels() {
        env.lib.kernel(sym)?;
    }
    for id in [KernelId::FillIds, KernelId::FillChase, KernelId::StampPoint] {
        env.lib.kernel(KernelSymbol::plain(id))?;
    }
    for d in DType::ALL {
        env.lib.kernel(KernelSymbol::typed(KernelId::FillUniform, d))?;
    }
    Ok(())
}

/// Bytes of device memory `op` needs for its operands.
pub fn operand_bytes(op: &Op) -> usize {
    op.operands().iter().map(|o| o.bytes()).sum()
}
