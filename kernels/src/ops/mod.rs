//! Operators of the kernel library. Each one is plain data (its shape and precision), knows
//! its operands, its analytic FLOPs and DRAM bytes, the launches it makes (each with its share
//! of the cost), how to launch itself on a stream, and how to compute the same result on the
//! CPU in f64.
//!
//! Timing stamps: every launch of an operator has a stamp slot of its own (see
//! [`StampSlots`]); each kernel of ours writes [first block in, last block out] into its slot.
//! cuBLAS kernels cannot write stamps, so a library call is timed by the stamps around it: its
//! start is the end of the launch before it on the stream, its end the start of the launch
//! after it (see [`crate::timing::fill_library_spans`]). Two one-thread `stamp_point` kernels
//! make those neighbours where none exists: one after a library call that ends an operator
//! (always, so a request never ends before its last GEMM), and one before a library call when
//! [`LaunchEnv::bracket_library_calls`] is set (check, bench, and the first launch of a model).

mod attention;
mod cnn;
mod elementwise;
mod gemm;
mod linear;
mod norm;
mod stressor;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use attention::{AttentionDecode, AttentionPrefill, KvAppend};
pub use cnn::{Conv2d, ConvAlgo, ConvPath, DepthwiseConv2d, GlobalAvgPool, Pool2d, PoolMode};
pub use elementwise::{AddAct, BiasAct, Embedding, PatchTokens};
pub use gemm::Gemm;
pub use linear::Linear;
pub use norm::{LayerNorm, Softmax};
pub use stressor::{CHASE_A, CHASE_C, Stressor, StressorKind, chase_table};

use crate::error::{Error, Result};
use crate::gpu::{Blas, BlasLt, Dnn, KernelArgs, KernelLibrary, LaunchConfig, Stream, StreamLibraries};
use crate::id::{KernelId, KernelSymbol};
use crate::timing::SLOT_BYTES;
use crate::types::{DType, ElemType};

/// How an operand is used by its operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only, produced elsewhere (activations).
    Input,
    /// Read only, owned by the model (weights, biases, tables).
    Weight,
    /// Written by the operator; every element must be written.
    Output,
    /// Read and written in place (caches, the L2 stressor's buffer).
    InOut,
    /// Scratch the operator writes and reads itself (im2col columns).
    Workspace,
}

/// How check and bench fill an operand before a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// Uniform random in [lo, hi).
    Uniform { lo: f32, hi: f32 },
    /// Uniform random token ids in [0, vocab).
    Ids { vocab: u32 },
    /// The pointer-chase table: a single full-period cycle.
    Chase,
    /// Small integers `i % modulo`, exact under repeated +1.
    Iota { modulo: u32 },
    /// Nothing sensible: outputs and workspaces are poisoned instead.
    Poison,
}

/// One tensor an operator reads or writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operand {
    pub name: &'static str,
    pub role: Role,
    pub elem: ElemType,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl Operand {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> usize {
        self.len() * self.elem.bytes()
    }
    /// An operand description for code outside an operator (filling a model's tensors).
    pub fn describe(name: &'static str, role: Role, elem: ElemType, shape: Vec<usize>, init: Init) -> Self {
        Self::new(name, role, elem, shape, init)
    }

    pub(crate) fn new(name: &'static str, role: Role, elem: ElemType, shape: Vec<usize>, init: Init) -> Self {
        Operand { name, role, elem, shape, init }
    }
    pub(crate) fn input(name: &'static str, dtype: DType, shape: Vec<usize>) -> Self {
        Self::new(name, Role::Input, dtype.elem(), shape, Init::Uniform { lo: -1.0, hi: 1.0 })
    }
    pub(crate) fn weight(name: &'static str, dtype: DType, shape: Vec<usize>, scale: f32) -> Self {
        Self::new(name, Role::Weight, dtype.elem(), shape, Init::Uniform { lo: -scale, hi: scale })
    }
    pub(crate) fn output(name: &'static str, dtype: DType, shape: Vec<usize>) -> Self {
        Self::new(name, Role::Output, dtype.elem(), shape, Init::Poison)
    }
    pub(crate) fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }
    pub(crate) fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }
}

/// Analytic cost of one run of an operator, as implemented (an im2col convolution counts the
/// bytes of its column buffer; DRAM bytes count each tensor read or written once per kernel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub flops: f64,
    /// Multiply-accumulates of the matrix-like part (GEMMs, convolutions, attention products),
    /// as model MAC counts are quoted; zero for element-wise work.
    pub macs: f64,
    pub dram_bytes: f64,
    /// Which ceiling the FLOPs are measured against.
    pub unit: ComputeUnit,
}

impl Cost {
    /// The cost of several launches run one after another: FLOPs, MACs and bytes add up; the
    /// unit is the one that does most of the arithmetic.
    pub fn sum(parts: impl IntoIterator<Item = Cost>) -> Cost {
        let mut total = Cost::default();
        let mut unit_flops = -1.0;
        for c in parts {
            total.flops += c.flops;
            total.macs += c.macs;
            total.dram_bytes += c.dram_bytes;
            if c.flops > unit_flops {
                unit_flops = c.flops;
                total.unit = c.unit;
            }
        }
        total
    }
}

/// The most launches any operator makes (a convolution: im2col, GEMM, epilogue).
pub const MAX_LAUNCHES_PER_OP: usize = 4;

/// Who runs one launch of an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Launcher {
    /// A kernel of coloc's library, which writes its own stamps.
    Coloc(KernelSymbol),
    /// One cuBLAS call (one or more of cuBLAS's kernels), timed by the stamps around it.
    Cublas,
    /// One cuDNN call, timed the same way.
    Cudnn,
}

/// One launch an operator makes, in order, with its share of the operator's analytic cost.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub launcher: Launcher,
    pub cost: Cost,
}

impl LaunchSpec {
    pub fn coloc(symbol: KernelSymbol, cost: Cost) -> LaunchSpec {
        LaunchSpec { launcher: Launcher::Coloc(symbol), cost }
    }
    pub fn cublas(cost: Cost) -> LaunchSpec {
        LaunchSpec { launcher: Launcher::Cublas, cost }
    }
    pub fn cudnn(cost: Cost) -> LaunchSpec {
        LaunchSpec { launcher: Launcher::Cudnn, cost }
    }
    /// A vendor library's call rather than a kernel of ours: it writes no stamps.
    pub fn is_library(&self) -> bool {
        self.launcher.is_library()
    }
    /// `im2col_bf16`, or `cublas` for a library call.
    pub fn name(&self) -> String {
        match self.launcher {
            Launcher::Coloc(s) => s.c_name(),
            Launcher::Cublas => "cublas".into(),
            Launcher::Cudnn => "cudnn".into(),
        }
    }
}

impl Launcher {
    pub fn is_library(self) -> bool {
        matches!(self, Launcher::Cublas | Launcher::Cudnn)
    }
}

/// The stamp slots of one operator: launch `i` writes into `at(i)`. A null base turns
/// instrumentation off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StampSlots {
    base: u64,
}

impl StampSlots {
    /// No stamps.
    pub const NONE: StampSlots = StampSlots { base: 0 };

    /// Slots starting at device address `base`, one per launch of the operator.
    pub fn at_address(base: u64) -> StampSlots {
        StampSlots { base }
    }

    /// The slot of launch `i` (null when instrumentation is off).
    pub fn at(&self, i: usize) -> u64 {
        if self.base == 0 { 0 } else { self.base + (i * SLOT_BYTES) as u64 }
    }
}

/// The execution unit whose ceiling bounds an operator's arithmetic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeUnit {
    /// Plain f32 FMA pipes.
    #[default]
    Fp32,
    /// Tensor cores in TF32.
    TensorTf32,
    /// Tensor cores in bf16.
    TensorBf16,
}

/// A tensor on the host, in f64 (exact for every device element type).
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl HostTensor {
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        HostTensor { shape, data: vec![0.0; n] }
    }
}

/// Named host tensors (inputs to or outputs of a reference).
pub type HostTensors = BTreeMap<&'static str, HostTensor>;

/// Device pointers of an operator's operands, by name; an operand the operator does not have
/// (an absent bias) reads as a null pointer.
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    ptrs: Vec<(&'static str, u64)>,
}

impl Bindings {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn bind(&mut self, name: &'static str, ptr: u64) {
        self.ptrs.retain(|(n, _)| *n != name);
        self.ptrs.push((name, ptr));
    }
    pub fn get(&self, name: &str) -> u64 {
        self.ptrs.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).unwrap_or(0)
    }
    pub(crate) fn require(&self, op: &str, name: &str) -> Result<u64> {
        match self.get(name) {
            0 => Err(Error::invalid(op, format!("operand `{name}` is not bound to a device buffer"))),
            p => Ok(p),
        }
    }
}

/// What an operator needs to launch.
#[derive(Clone, Copy)]
pub struct LaunchEnv<'a> {
    pub lib: &'a KernelLibrary,
    pub stream: &'a Stream,
    /// The stream's library handles; None for launches that need no library.
    pub libs: Option<&'a StreamLibraries>,
    pub bracket_library_calls: bool,
}

impl LaunchEnv<'_> {
    /// SMs of the whole device. Grids are sized for the device, not the partition, so the
    /// same operator launches the same grid in every partition.
    pub fn device_sms(&self) -> u32 {
        self.lib.device().info().sm_count
    }

    pub fn launch(&self, sym: KernelSymbol, cfg: LaunchConfig, mut args: KernelArgs) -> Result<()> {
        self.lib.kernel(sym)?.launch(self.stream, cfg, &mut args)
    }

    /// A grid-stride launch of `work` threads: at most one full wave of 256-thread blocks.
    pub fn launch_1d(&self, sym: KernelSymbol, work: u64, args: KernelArgs) -> Result<()> {
        let cfg = LaunchConfig::grid_stride(work, 256, self.device_sms() * 8);
        self.launch(sym, cfg, args)
    }

    pub fn blas(&self, op: &str) -> Result<&Blas> {
        self.libs.map(|l| &l.blas).ok_or_else(|| Error::invalid(op, "needs a cuBLAS handle for its stream"))
    }

    pub fn blas_lt(&self, op: &str) -> Result<&BlasLt> {
        self.libs.map(|l| &l.blas_lt).ok_or_else(|| Error::invalid(op, "needs a cuBLASLt handle for its stream"))
    }

    /// The stream's cuDNN handle; an error naming the missing library where there is none.
    pub fn dnn(&self, op: &str) -> Result<&Dnn> {
        let libs = self.libs.ok_or_else(|| Error::invalid(op, "needs library handles for its stream"))?;
        match &libs.dnn {
            Some(d) => Ok(d),
            None => Err(crate::gpu::libs::require_cudnn()
                .err()
                .unwrap_or_else(|| Error::invalid(op, "needs a cuDNN handle for its stream"))),
        }
    }

    /// One-thread stamp of entry (`end` = false) or exit into `stamp`.
    fn stamp_point(&self, stamp: u64, end: bool) -> Result<()> {
        if stamp == 0 {
            return Ok(());
        }
        let args = KernelArgs::new().ptr(stamp).i32(end as i32);
        self.launch(KernelSymbol::plain(KernelId::StampPoint), LaunchConfig::new((1, 1, 1), (32, 1, 1)), args)
    }

    /// Queues library call `call` as launch `i` of an operator: an entry stamp before it when
    /// library calls are bracketed, an exit stamp after it when it is the operator's last
    /// launch (`last`), so that the call has a stamped neighbour on both sides.
    pub fn library_call(
        &self,
        slots: StampSlots,
        i: usize,
        last: bool,
        call: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        if self.bracket_library_calls {
            self.stamp_point(slots.at(i), false)?;
        }
        call()?;
        if last { self.stamp_point(slots.at(i), true) } else { Ok(()) }
    }
}

/// What every operator provides.
pub trait OpSpec {
    /// Operator name, e.g. `conv2d`.
    fn kind(&self) -> &'static str;
    /// Shape and precision in one line, e.g. `bf16 n=8 56x56x64->64 k3 s1 p1 relu`.
    fn shape(&self) -> String;
    /// Rejects shapes the kernels cannot run, with the reason.
    fn validate(&self) -> Result<()>;
    fn operands(&self) -> Vec<Operand>;
    /// Analytic cost of the whole operator (the sum over its launches).
    fn cost(&self) -> Cost;
    /// Its launches in order, each with its share of [`cost`](Self::cost).
    fn launches(&self) -> Vec<LaunchSpec>;
    /// The kernels of ours it launches (cuBLAS calls are not listed).
    fn kernels(&self) -> Vec<KernelSymbol> {
        self.launches()
            .iter()
            .filter_map(|l| match l.launcher {
                Launcher::Coloc(s) => Some(s),
                Launcher::Cublas | Launcher::Cudnn => None,
            })
            .collect()
    }
    /// Queues every launch on `env.stream`, launch `i` stamping into `slots.at(i)`.
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()>;
    /// The outputs (Output and InOut operands, by name) computed in f64 from the inputs.
    fn reference(&self, inputs: &HostTensors) -> HostTensors;
    /// Largest accepted relative L2 error of the outputs against the reference.
    fn tolerance(&self) -> f64;
}

/// Relative L2 tolerance for results stored in `dtype` after f32 arithmetic.
pub(crate) fn storage_tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-5,
        DType::Bf16 => 1e-2,
    }
}

/// Any operator of the library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Gemm(Gemm),
    Linear(Linear),
    Conv2d(Conv2d),
    DepthwiseConv2d(DepthwiseConv2d),
    Pool2d(Pool2d),
    GlobalAvgPool(GlobalAvgPool),
    BiasAct(BiasAct),
    AddAct(AddAct),
    LayerNorm(LayerNorm),
    Softmax(Softmax),
    AttentionPrefill(AttentionPrefill),
    AttentionDecode(AttentionDecode),
    KvAppend(KvAppend),
    Embedding(Embedding),
    PatchTokens(PatchTokens),
    Stressor(Stressor),
}

macro_rules! dispatch {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Op::Gemm($o) => $e,
            Op::Linear($o) => $e,
            Op::Conv2d($o) => $e,
            Op::DepthwiseConv2d($o) => $e,
            Op::Pool2d($o) => $e,
            Op::GlobalAvgPool($o) => $e,
            Op::BiasAct($o) => $e,
            Op::AddAct($o) => $e,
            Op::LayerNorm($o) => $e,
            Op::Softmax($o) => $e,
            Op::AttentionPrefill($o) => $e,
            Op::AttentionDecode($o) => $e,
            Op::KvAppend($o) => $e,
            Op::Embedding($o) => $e,
            Op::PatchTokens($o) => $e,
            Op::Stressor($o) => $e,
        }
    };
}

impl OpSpec for Op {
    fn kind(&self) -> &'static str {
        dispatch!(self, o => o.kind())
    }
    fn shape(&self) -> String {
        dispatch!(self, o => o.shape())
    }
    fn validate(&self) -> Result<()> {
        dispatch!(self, o => o.validate())
    }
    fn operands(&self) -> Vec<Operand> {
        dispatch!(self, o => o.operands())
    }
    fn cost(&self) -> Cost {
        dispatch!(self, o => o.cost())
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        dispatch!(self, o => o.launches())
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        dispatch!(self, o => o.launch(env, b, slots))
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        dispatch!(self, o => o.reference(inputs))
    }
    fn tolerance(&self) -> f64 {
        dispatch!(self, o => o.tolerance())
    }
}

impl Op {
    /// `kind shape`, for tables.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind(), self.shape())
    }
}

/// Shared validation helper: every listed dimension must be positive.
pub(crate) fn positive(op: &str, dims: &[(&str, usize)]) -> Result<()> {
    for (name, v) in dims {
        if *v == 0 {
            return Err(Error::invalid(op, format!("{name} must be at least 1")));
        }
    }
    Ok(())
}

/// Whether a kernel may move runs of `len` elements in 16-byte pieces: `len` is a whole number
/// of pieces and every pointer is 16-byte aligned (a null pointer, an absent operand, passes).
pub(crate) fn in_pieces(dtype: DType, len: usize, pointers: &[u64]) -> bool {
    len % (16 / dtype.bytes()) == 0 && pointers.iter().all(|p| p % 16 == 0)
}

/// Element count must fit the kernels' 32-bit loop bounds where they use them.
pub(crate) fn fits_i32(op: &str, what: &str, v: usize) -> Result<()> {
    if v > i32::MAX as usize {
        return Err(Error::invalid(op, format!("{what} = {v} exceeds 2^31 - 1")));
    }
    Ok(())
}

/// Output height and width of a strided 2-D window over an input of `hw`.
pub(crate) fn window_out_hw(
    op: &str,
    hw: (usize, usize),
    kernel: (usize, usize),
    stride: usize,
    pad: usize,
) -> Result<(usize, usize)> {
    Ok((window_out(op, hw.0, kernel.0, stride, pad)?, window_out(op, hw.1, kernel.1, stride, pad)?))
}

/// Output size of a strided window: `(input + 2 pad - window) / stride + 1`.
pub(crate) fn window_out(op: &str, input: usize, window: usize, stride: usize, pad: usize) -> Result<usize> {
    if stride == 0 {
        return Err(Error::invalid(op, "stride must be at least 1"));
    }
    let padded = input + 2 * pad;
    if window == 0 || window > padded {
        return Err(Error::invalid(op, format!("window {window} does not fit input {input} with padding {pad}")));
    }
    Ok((padded - window) / stride + 1)
}
