//! Synthetic stressors: one resource each, with a tunable intensity. The grid (`blocks` x
//! `threads`) sets how many SMs and warps take part; the work amount (iterations, passes,
//! steps) sets how long. References reproduce the device arithmetic in f32, operation for
//! operation, so results must match exactly.

use serde::{Deserialize, Serialize};

use super::{
    Bindings, ComputeUnit, Cost, HostTensor, HostTensors, Init, LaunchEnv, LaunchSpec, OpSpec, Operand, Role,
    StampSlots,
};
use crate::error::{Error, Result};
use crate::gpu::{KernelArgs, LaunchConfig};
use crate::id::{KernelId, KernelSymbol};
use crate::types::{DType, ElemType};

/// Multiplier and increment of the pointer-chase permutation (`fill_chase`).
pub const CHASE_A: u64 = 1_664_525;
pub const CHASE_C: u64 = 1_013_904_223;
/// Triad constants of the streaming stressor: dst = src * A + B.
const STREAM_A: f32 = 0.5;
const STREAM_B: f32 = 0.25;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StressorKind {
    /// Compute: 8 dependent FMA chains per thread, `iters` long.
    Fma { iters: u64 },
    /// DRAM: `dst = src * a + b` over two buffers of `bytes` each, `passes` times.
    Stream { bytes: u64, passes: u32 },
    /// L2: read-modify-write of a buffer of `bytes` (meant to fit in L2), `passes` times.
    L2 { bytes: u64, passes: u32 },
    /// Shared memory: `iters` x 4 reads per thread from 32 KiB; `stride` 32 = 32-way conflicts.
    Smem { iters: u32, stride: u32 },
    /// Latency: each thread follows a pointer chain through `entries` (a power of two) 4-byte
    /// entries, `steps` long.
    Chase { entries: u64, steps: u64 },
}

/// A stressor kernel with its grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stressor {
    pub kind: StressorKind,
    pub blocks: u32,
    pub threads: u32,
}

impl Stressor {
    /// The stressor at full intensity on a device of `sms` SMs: a full wave of resident
    /// blocks (one 32-thread block per SM for the latency-bound chase).
    pub fn full_device(kind: StressorKind, sms: u32) -> Stressor {
        match kind {
            StressorKind::Chase { .. } => Stressor { kind, blocks: sms, threads: 32 },
            _ => Stressor { kind, blocks: sms * 8, threads: 256 },
        }
    }

    pub fn total_threads(&self) -> usize {
        self.blocks as usize * self.threads as usize
    }

    fn symbol(&self) -> KernelSymbol {
        KernelSymbol::plain(match self.kind {
            StressorKind::Fma { .. } => KernelId::StressFma,
            StressorKind::Stream { .. } => KernelId::StressStream,
            StressorKind::L2 { .. } => KernelId::StressL2,
            StressorKind::Smem { .. } => KernelId::StressSmem,
            StressorKind::Chase { .. } => KernelId::StressChase,
        })
    }

    fn name(&self) -> &'static str {
        match self.kind {
            StressorKind::Fma { .. } => "stress_fma",
            StressorKind::Stream { .. } => "stress_stream",
            StressorKind::L2 { .. } => "stress_l2",
            StressorKind::Smem { .. } => "stress_smem",
            StressorKind::Chase { .. } => "stress_chase",
        }
    }
}

fn f32_operand(name: &'static str, role: Role, len: usize, init: Init) -> Operand {
    Operand::new(name, role, ElemType::F32, vec![len], init)
}

impl OpSpec for Stressor {
    fn kind(&self) -> &'static str {
        self.name()
    }

    fn shape(&self) -> String {
        let work = match &self.kind {
            StressorKind::Fma { iters } => format!("iters={iters}"),
            StressorKind::Stream { bytes, passes } => format!("bytes={bytes} passes={passes}"),
            StressorKind::L2 { bytes, passes } => format!("bytes={bytes} passes={passes}"),
            StressorKind::Smem { iters, stride } => format!("iters={iters} stride={stride}"),
            StressorKind::Chase { entries, steps } => format!("entries={entries} steps={steps}"),
        };
        format!("{work} grid={}x{}", self.blocks, self.threads)
    }

    fn validate(&self) -> Result<()> {
        let op = self.name();
        if self.blocks == 0 || self.threads == 0 || self.threads > 256 || self.threads % 32 != 0 {
            return Err(Error::invalid(op, "threads must be a multiple of 32 up to 256, blocks at least 1"));
        }
        let problem = match self.kind {
            StressorKind::Stream { bytes, passes } | StressorKind::L2 { bytes, passes }
                if bytes == 0 || bytes % 16 != 0 || passes == 0 =>
            {
                Some("bytes must be a positive multiple of 16 and passes at least 1")
            }
            StressorKind::Chase { entries, steps }
                if !entries.is_power_of_two() || !(2..=1 << 32).contains(&entries) || steps == 0 =>
            {
                Some("entries must be a power of two in [2, 2^32] and steps at least 1")
            }
            StressorKind::Smem { stride: 0, .. } => Some("stride must be at least 1"),
            _ => None,
        };
        problem.map_or(Ok(()), |p| Err(Error::invalid(op, p)))
    }

    fn operands(&self) -> Vec<Operand> {
        let t = self.total_threads();
        match self.kind {
            StressorKind::Fma { .. } | StressorKind::Smem { .. } => vec![Operand::output("out", DType::F32, vec![t])],
            StressorKind::Stream { bytes, .. } => {
                let n = (bytes / 4) as usize;
                vec![
                    f32_operand("src", Role::Input, n, Init::Uniform { lo: -1.0, hi: 1.0 }),
                    Operand::output("dst", DType::F32, vec![n]),
                ]
            }
            StressorKind::L2 { bytes, .. } => {
                vec![f32_operand("buf", Role::InOut, (bytes / 4) as usize, Init::Iota { modulo: 1024 })]
            }
            StressorKind::Chase { entries, .. } => vec![
                Operand::new("next", Role::Input, ElemType::U32, vec![entries as usize], Init::Chase),
                Operand::new("out", Role::Output, ElemType::U32, vec![t], Init::Poison),
            ],
        }
    }

    fn cost(&self) -> Cost {
        let t = self.total_threads() as f64;
        let (flops, dram_bytes) = match self.kind {
            StressorKind::Fma { iters } => (16.0 * iters as f64 * t, 4.0 * t),
            StressorKind::Stream { bytes, passes } => {
                (2.0 * (bytes / 4) as f64 * passes as f64, 2.0 * bytes as f64 * passes as f64)
            }
            StressorKind::L2 { bytes, passes } => ((bytes / 4) as f64 * passes as f64, 2.0 * bytes as f64),
            StressorKind::Smem { iters, .. } => (4.0 * iters as f64 * t, 4.0 * t),
            // One 32-byte DRAM sector per dependent load once the table is far larger than L2.
            StressorKind::Chase { steps, .. } => (0.0, 32.0 * steps as f64 * t),
        };
        Cost { macs: 0.0, flops, dram_bytes, unit: ComputeUnit::Fp32 }
    }

    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(self.symbol(), self.cost())]
    }

    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let op = self.name();
        let args = match self.kind {
            StressorKind::Fma { iters } => KernelArgs::new().ptr(b.require(op, "out")?).i64(iters as i64),
            StressorKind::Stream { bytes, passes } => KernelArgs::new()
                .ptr(b.require(op, "dst")?)
                .ptr(b.require(op, "src")?)
                .i64((bytes / 16) as i64)
                .i32(passes as i32)
                .f32(STREAM_A)
                .f32(STREAM_B),
            StressorKind::L2 { bytes, passes } => {
                KernelArgs::new().ptr(b.require(op, "buf")?).i64((bytes / 16) as i64).i32(passes as i32)
            }
            StressorKind::Smem { iters, stride } => {
                KernelArgs::new().ptr(b.require(op, "out")?).i32(iters as i32).i32(stride as i32)
            }
            StressorKind::Chase { entries, steps } => KernelArgs::new()
                .ptr(b.require(op, "out")?)
                .ptr(b.require(op, "next")?)
                .i64(entries as i64)
                .i64(steps as i64),
        };
        let cfg = LaunchConfig::new((self.blocks, 1, 1), (self.threads, 1, 1));
        env.launch(self.symbol(), cfg, args.ptr(stamp))
    }

    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let t = self.total_threads();
        let tensor = |data: Vec<f64>| HostTensor { shape: vec![data.len()], data };
        match self.kind {
            StressorKind::Fma { iters } => {
                let out = (0..t)
                    .map(|tid| {
                        let mut x: [f32; 8] = std::array::from_fn(|k| ((tid + k) & 1023) as f32 * (1.0 / 1024.0));
                        for _ in 0..iters {
                            for v in x.iter_mut() {
                                *v = v.mul_add(0.999, 0.001);
                            }
                        }
                        (((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]))) as f64
                    })
                    .collect();
                HostTensors::from([("out", tensor(out))])
            }
            StressorKind::Stream { .. } => {
                let dst = inputs["src"].data.iter().map(|v| (*v as f32).mul_add(STREAM_A, STREAM_B) as f64).collect();
                HostTensors::from([("dst", tensor(dst))])
            }
            StressorKind::L2 { passes, .. } => {
                let buf = inputs["buf"]
                    .data
                    .iter()
                    .map(|v| {
                        let mut x = *v as f32;
                        for _ in 0..passes {
                            x += 1.0;
                        }
                        x as f64
                    })
                    .collect();
                HostTensors::from([("buf", tensor(buf))])
            }
            StressorKind::Smem { iters, stride } => {
                const FLOATS: u32 = 8192;
                let mask = FLOATS - 1;
                let s = |i: u32| (i & 63) as f32;
                let out = (0..t)
                    .map(|g| {
                        let tid = (g % self.threads as usize) as u32;
                        let step = self.threads;
                        let base = tid.wrapping_mul(stride);
                        let mut a = [0f32; 4];
                        for it in 0..iters {
                            let off = base.wrapping_add(it.wrapping_mul(4).wrapping_mul(step));
                            for (u, acc) in a.iter_mut().enumerate() {
                                *acc += s(off.wrapping_add(u as u32 * step) & mask);
                            }
                        }
                        ((a[0] + a[1]) + (a[2] + a[3])) as f64
                    })
                    .collect();
                HostTensors::from([("out", tensor(out))])
            }
            StressorKind::Chase { entries, steps } => {
                let next = &inputs["next"].data;
                let out = (0..t as u64)
                    .map(|tid| {
                        let mut j = (tid.wrapping_mul(2_654_435_761) % entries) as usize;
                        for _ in 0..steps {
                            j = next[j] as usize;
                        }
                        j as f64
                    })
                    .collect();
                HostTensors::from([("out", tensor(out))])
            }
        }
    }

    fn tolerance(&self) -> f64 {
        0.0
    }
}

/// The chase table on the host: `next[i] = (A i + C) mod n`.
pub fn chase_table(entries: u64) -> Vec<u32> {
    (0..entries).map(|i| (CHASE_A.wrapping_mul(i).wrapping_add(CHASE_C) & (entries - 1)) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chase_table_is_one_cycle_through_every_entry() {
        let n = 1u64 << 12;
        let next = chase_table(n);
        let mut seen = vec![false; n as usize];
        let mut j = 0usize;
        for _ in 0..n {
            assert!(!seen[j], "entry {j} visited twice before the cycle closed");
            seen[j] = true;
            j = next[j] as usize;
        }
        assert_eq!(j, 0);
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn fma_reference_converges_towards_its_fixed_point() {
        let s = Stressor { kind: StressorKind::Fma { iters: 20_000 }, blocks: 1, threads: 32 };
        let out = &s.reference(&HostTensors::new())["out"].data;
        // each chain tends to 0.001 / (1 - 0.999) = 1, so the sum of eight tends to 8
        assert!(out.iter().all(|v| (v - 8.0).abs() < 1e-3), "{out:?}");
        assert_eq!(s.cost().flops, 16.0 * 20_000.0 * 32.0);
    }

    #[test]
    fn smem_reference_sums_the_pattern_it_reads() {
        // stride 1, one iteration: thread t reads words t, t+32, t+64, t+96 of (i & 63).
        let s = Stressor { kind: StressorKind::Smem { iters: 1, stride: 1 }, blocks: 1, threads: 32 };
        let out = &s.reference(&HostTensors::new())["out"].data;
        for (t, v) in out.iter().enumerate() {
            let want: u32 = (0..4).map(|u| (t as u32 + u * 32) & 63).sum();
            assert_eq!(*v, want as f64);
        }
    }

    #[test]
    fn stressors_reject_bad_grids_and_sizes() {
        let bad_threads = Stressor { kind: StressorKind::Fma { iters: 1 }, blocks: 1, threads: 100 };
        assert!(bad_threads.validate().is_err());
        let bad_chase = Stressor { kind: StressorKind::Chase { entries: 1000, steps: 1 }, blocks: 1, threads: 32 };
        assert!(bad_chase.validate().unwrap_err().to_string().contains("power of two"));
        let bad_stream = Stressor { kind: StressorKind::Stream { bytes: 20, passes: 1 }, blocks: 1, threads: 32 };
        assert!(bad_stream.validate().is_err());
    }
}
