//! Convolutional-network operators on NHWC tensors.

use serde::{Deserialize, Serialize};

use super::gemm::{gemm_tolerance, gemm_unit};
use super::{
    Bindings, ComputeUnit, Cost, HostTensor, HostTensors, LaunchEnv, LaunchSpec, OpSpec, Operand, Role, StampSlots,
    fits_i32, in_pieces, positive, storage_tolerance, window_out_hw,
};
use crate::error::{Error, Result};
use crate::gpu::{ConvShape, DnnType, GemmCall, GemmPrecision, KernelArgs, LaunchConfig};
use crate::id::{KernelId, KernelSymbol};
use crate::types::{Activation, DType};

/// 2-D convolution, NHWC, weights [out_ch, kh*kw*in_ch] (ky, kx, ci order). Three ways, by
/// shape: a 1x1, stride-1, unpadded convolution is one cuBLAS GEMM; a bf16 convolution whose
/// input channels come in multiples of 32 is one implicit-GEMM kernel on tensor cores with
/// bias and activation fused (conv_mma.cu); anything else is an im2col gather plus one cuBLAS
/// GEMM. The GEMM paths end with bias and activation in one pass over the output. Batch norm
/// is folded into the weights and bias, as inference engines do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv2d {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub in_ch: usize,
    pub out_ch: usize,
    pub kernel: (usize, usize),
    #[serde(default = "one")]
    pub stride: usize,
    #[serde(default)]
    pub pad: usize,
    #[serde(default)]
    pub act: Activation,
    #[serde(default = "yes")]
    pub bias: bool,
    pub precision: GemmPrecision,
    #[serde(default)]
    pub algo: ConvAlgo,
}

/// How a convolution is asked to run: `Auto` picks by shape ([`Conv2d::path`]); the others
/// pin a path, as a user comparing them (or the kernel check, on shapes too small for the
/// implicit GEMM to be picked) wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvAlgo {
    #[default]
    Auto,
    /// cuBLAS: the GEMM alone for a plain 1x1, else im2col first.
    Gemm,
    /// The implicit-GEMM kernel on tensor cores.
    Implicit,
    /// cuDNN (bf16), with coloc's epilogue for bias and activation.
    Cudnn,
}

/// The path a convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPath {
    /// 1x1, stride 1, no padding: the input is already the GEMM's A.
    Direct,
    Im2colGemm,
    Implicit,
    Cudnn,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

impl Conv2d {
    pub fn out_hw(&self) -> Result<(usize, usize)> {
        window_out_hw("conv2d", (self.height, self.width), self.kernel, self.stride, self.pad)
    }
    fn direct(&self) -> bool {
        self.kernel == (1, 1) && self.stride == 1 && self.pad == 0
    }
    /// Why the implicit-GEMM kernel cannot run this convolution, if it cannot: it takes bf16,
    /// whole 32-channel slices of the input and output channels in pairs.
    fn implicit_unfit(&self) -> Option<String> {
        if self.precision != GemmPrecision::Bf16 {
            Some(format!("is bf16 only, not {}", self.precision.name()))
        } else if self.in_ch % IMPLICIT_CHANNELS != 0 {
            Some(format!("needs in_ch in multiples of {IMPLICIT_CHANNELS}, not {}", self.in_ch))
        } else if self.out_ch % 2 != 0 {
            Some(format!("needs an even out_ch, not {}", self.out_ch))
        } else {
            None
        }
    }
    /// The path this convolution runs. `Auto` takes a plain GEMM for a 1x1 that is one;
    /// cuDNN for bf16 where this machine has it, as production inference does; else coloc's
    /// implicit GEMM where it fits, has enough output tiles to fill the GPU and is narrow
    /// enough to beat im2col + cuBLAS; else im2col. Whether cuDNN loads is looked up once per
    /// process, so every process of a measurement on one machine takes the same path.
    pub fn path(&self) -> ConvPath {
        self.path_where(crate::gpu::libs::cudnn_present())
    }
    /// [`path`](Self::path) on a machine where cuDNN loads (`cudnn`) or not.
    pub fn path_where(&self, cudnn: bool) -> ConvPath {
        let (m, n, _) = self.dims();
        let tiles = m.div_ceil(IMPLICIT_TILE.0 as usize) * n.div_ceil(IMPLICIT_TILE.1 as usize);
        match self.algo {
            ConvAlgo::Implicit => ConvPath::Implicit,
            ConvAlgo::Cudnn => ConvPath::Cudnn,
            _ if self.direct() => ConvPath::Direct,
            ConvAlgo::Auto if self.precision == GemmPrecision::Bf16 && cudnn => ConvPath::Cudnn,
            ConvAlgo::Auto
                if self.implicit_unfit().is_none()
                    && tiles >= IMPLICIT_MIN_TILES
                    && self.out_ch <= IMPLICIT_MAX_OUT_CH =>
            {
                ConvPath::Implicit
            }
            _ => ConvPath::Im2colGemm,
        }
    }
    fn k_dim(&self) -> usize {
        self.kernel.0 * self.kernel.1 * self.in_ch
    }
    fn dims(&self) -> (usize, usize, usize) {
        let (oh, ow) = self.out_hw().unwrap_or((0, 0));
        (self.batch * oh * ow, self.out_ch, self.k_dim())
    }
    fn has_epilogue(&self) -> bool {
        self.bias || self.act != Activation::None
    }
    /// The bias + activation launch after a library call, if there is one: reads and writes
    /// the output once.
    fn epilogue_launch(&self, m: f64, n: f64, e: f64) -> Option<LaunchSpec> {
        self.has_epilogue().then(|| {
            let cost = Cost {
                macs: 0.0,
                flops: m * n * (self.bias as u8 as f64 + self.act.flops()),
                dram_bytes: (2.0 * m * n + if self.bias { n } else { 0.0 }) * e,
                unit: ComputeUnit::Fp32,
            };
            LaunchSpec::coloc(KernelSymbol::typed(KernelId::BiasAct, self.dtype()), cost)
        })
    }
    /// This convolution as cuDNN describes it (validated: bf16 on this path).
    fn dnn_shape(&self) -> ConvShape {
        ConvShape {
            n: self.batch,
            h: self.height,
            w: self.width,
            in_ch: self.in_ch,
            out_ch: self.out_ch,
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            groups: 1,
            dtype: DnnType::Bf16,
        }
    }
    fn dtype(&self) -> DType {
        self.precision.dtype()
    }
}

/// The geometry of a windowed kernel (depthwise and implicit-GEMM convolution), NHWC.
struct Window {
    /// batch, height, width, channels
    input: (usize, usize, usize, usize),
    kernel: (usize, usize),
    stride: usize,
    pad: usize,
    output: (usize, usize),
}

impl Window {
    /// The arguments both windowed kernels begin with: y, x, w, bias, the geometry, the
    /// activation.
    fn args(&self, [y, x, w, bias]: [u64; 4], act: Activation) -> KernelArgs {
        let (n, h, wd, c) = self.input;
        KernelArgs::new()
            .ptr(y)
            .ptr(x)
            .ptr(w)
            .ptr(bias)
            .i32(n as i32)
            .i32(h as i32)
            .i32(wd as i32)
            .i32(c as i32)
            .i32(self.kernel.0 as i32)
            .i32(self.kernel.1 as i32)
            .i32(self.stride as i32)
            .i32(self.pad as i32)
            .i32(self.output.0 as i32)
            .i32(self.output.1 as i32)
            .i32(act.code())
    }
}

/// Rows (output pixels) per block step of im2col (`IM2COL_ROWS` in cnn.cu).
const IM2COL_ROWS: u32 = 8;
/// Input channels per K slice of the implicit GEMM (`CONV_BK` in conv_mma.cu).
const IMPLICIT_CHANNELS: usize = 32;
/// Tile of the implicit GEMM: output pixels by output channels (`CONV_BM`, `CONV_BN`).
const IMPLICIT_TILE: (u32, u32) = (128, 64);
/// Threads per block of the implicit GEMM (`CONV_THREADS`).
const IMPLICIT_THREADS: u32 = 128;
/// The implicit GEMM has no split-K: with fewer tiles than this (about four per SM of a
/// large GPU) each block walks a long K alone, and im2col + cuBLAS (which splits K) is faster.
const IMPLICIT_MIN_TILES: usize = 512;
/// `auto` takes the implicit GEMM only up to this many output channels. cuBLAS multiplies
/// about 2.4 times faster than the implicit kernel (430 against 180 TFLOP/s on VGG-16's layers
/// at batch 32, H200), so skipping the column buffer pays only where the GEMM is narrow and the
/// buffer dominates: 224x224x64->64 took 1.18 ms implicit against 1.74 ms with im2col, while
/// 112x112x128->128 took 0.84 against 0.76 (data/h200-checks/issue8/3-implicit-conv).
const IMPLICIT_MAX_OUT_CH: usize = 64;

impl OpSpec for Conv2d {
    fn kind(&self) -> &'static str {
        "conv2d"
    }

    fn shape(&self) -> String {
        format!(
            "{} n={} {}x{}x{}->{} k{}x{} s{} p{} {:?}{}",
            self.precision.name(),
            self.batch,
            self.height,
            self.width,
            self.in_ch,
            self.out_ch,
            self.kernel.0,
            self.kernel.1,
            self.stride,
            self.pad,
            self.act,
            match self.algo {
                ConvAlgo::Auto => "",
                ConvAlgo::Gemm => " gemm",
                ConvAlgo::Implicit => " implicit",
                ConvAlgo::Cudnn => " cudnn",
            }
        )
        .to_lowercase()
    }

    fn validate(&self) -> Result<()> {
        positive(
            "conv2d",
            &[
                ("batch", self.batch),
                ("height", self.height),
                ("width", self.width),
                ("in_ch", self.in_ch),
                ("out_ch", self.out_ch),
            ],
        )?;
        self.out_hw()?;
        let (m, n, k) = self.dims();
        fits_i32("conv2d", "rows (batch x out_h x out_w)", m)?;
        fits_i32("conv2d", "out_ch", n)?;
        fits_i32("conv2d", "kh x kw x in_ch", k)?;
        match (self.algo, self.implicit_unfit()) {
            (ConvAlgo::Implicit, Some(why)) => {
                Err(Error::invalid("conv2d", format!("algo = \"implicit\": the implicit GEMM {why}")))
            }
            (ConvAlgo::Cudnn, _) if self.precision != GemmPrecision::Bf16 => {
                Err(Error::invalid("conv2d", format!("algo = \"cudnn\" runs bf16 only, not {}", self.precision.name())))
            }
            _ => Ok(()),
        }
    }

    fn operands(&self) -> Vec<Operand> {
        let d = self.dtype();
        let (oh, ow) = self.out_hw().unwrap_or((0, 0));
        let (m, _, k) = self.dims();
        let mut v = vec![
            Operand::input("x", d, vec![self.batch, self.height, self.width, self.in_ch]),
            Operand::weight("w", d, vec![self.out_ch, k], 1.0 / (k as f32).sqrt()),
        ];
        if self.bias {
            v.push(Operand::weight("bias", d, vec![self.out_ch], 0.5));
        }
        v.push(Operand::output("y", d, vec![self.batch, oh, ow, self.out_ch]));
        if self.path() == ConvPath::Im2colGemm {
            v.push(Operand::output("col", d, vec![m, k]).with_role(Role::Workspace));
        }
        v
    }

    fn cost(&self) -> Cost {
        Cost::sum(self.launches().into_iter().map(|l| l.cost))
    }

    fn launches(&self) -> Vec<LaunchSpec> {
        let (m, n, k) = self.dims();
        let (m, n, k) = (m as f64, n as f64, k as f64);
        let e = self.dtype().bytes() as f64;
        let x = (self.batch * self.height * self.width * self.in_ch) as f64;
        let path = self.path();
        if path == ConvPath::Cudnn {
            // what cuDNN's kernels must move at least: the input, the weights, the output
            let cost = Cost {
                macs: m * n * k,
                flops: 2.0 * m * n * k,
                dram_bytes: (x + n * k + m * n) * e,
                unit: ComputeUnit::TensorBf16,
            };
            let mut v = vec![LaunchSpec::cudnn(cost)];
            v.extend(self.epilogue_launch(m, n, e));
            return v;
        }
        if path == ConvPath::Implicit {
            // the input once per output-channel tile, the weights, the output once
            let n_tiles = (n / IMPLICIT_TILE.1 as f64).ceil();
            let bytes = (x * n_tiles + n * k + m * n + if self.bias { n } else { 0.0 }) * e;
            let flops = 2.0 * m * n * k + m * n * (self.bias as u8 as f64 + self.act.flops());
            let cost = Cost { macs: m * n * k, flops, dram_bytes: bytes, unit: ComputeUnit::TensorBf16 };
            return vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::ConvImplicit, DType::Bf16), cost)];
        }
        let mut v = Vec::new();
        if path == ConvPath::Im2colGemm {
            // read the image, write the columns
            let cost = Cost { macs: 0.0, flops: 0.0, dram_bytes: (x + m * k) * e, unit: ComputeUnit::Fp32 };
            v.push(LaunchSpec::coloc(KernelSymbol::typed(KernelId::Im2col, self.dtype()), cost));
        }
        let gemm_bytes = (m * k + n * k + m * n) * e;
        let unit = gemm_unit(self.precision);
        v.push(LaunchSpec::cublas(Cost { macs: m * n * k, flops: 2.0 * m * n * k, dram_bytes: gemm_bytes, unit }));
        v.extend(self.epilogue_launch(m, n, e));
        v
    }

    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let (oh, ow) = self.out_hw()?;
        let (m, n, k) = self.dims();
        let d = self.dtype();
        let x = b.require("conv2d", "x")?;
        let y = b.require("conv2d", "y")?;
        let path = self.path();
        if path == ConvPath::Cudnn {
            let dnn = env.dnn("conv2d")?;
            let shape = self.dnn_shape();
            let w = b.require("conv2d", "w")?;
            env.library_call(slots, 0, !self.has_epilogue(), || dnn.conv_forward(&shape, x, w, y))?;
            if self.has_epilogue() {
                launch_bias_act(env, d, y, y, b.get("bias"), m * n, n, self.act, slots.at(1))?;
            }
            return Ok(());
        }
        if path == ConvPath::Implicit {
            let w = b.require("conv2d", "w")?;
            if x % 16 != 0 || w % 16 != 0 {
                return Err(Error::invalid("conv2d", "the implicit GEMM needs x and w 16-byte aligned"));
            }
            let grid = ((m as u32).div_ceil(IMPLICIT_TILE.0), (n as u32).div_ceil(IMPLICIT_TILE.1), 1);
            let window = Window {
                input: (self.batch, self.height, self.width, self.in_ch),
                kernel: self.kernel,
                stride: self.stride,
                pad: self.pad,
                output: (oh, ow),
            };
            let args = window.args([y, x, w, b.get("bias")], self.act).i32(self.out_ch as i32).ptr(slots.at(0));
            let cfg = LaunchConfig::new(grid, (IMPLICIT_THREADS, 1, 1));
            return env.launch(KernelSymbol::typed(KernelId::ConvImplicit, d), cfg, args);
        }
        let mut next = 0;
        let a = if path == ConvPath::Direct {
            x
        } else {
            let col = b.require("conv2d", "col")?;
            let args = KernelArgs::new()
                .ptr(col)
                .ptr(x)
                .i32(self.batch as i32)
                .i32(self.height as i32)
                .i32(self.width as i32)
                .i32(self.in_ch as i32)
                .i32(self.kernel.0 as i32)
                .i32(self.kernel.1 as i32)
                .i32(self.stride as i32)
                .i32(self.pad as i32)
                .i32(1)
                .i32(oh as i32)
                .i32(ow as i32)
                .i32(k as i32)
                .ptr(slots.at(0));
            // Rows (output pixels) are indexed in 32 bits on the device.
            if m > i32::MAX as usize {
                return Err(Error::invalid("conv2d", format!("{m} output pixels exceed im2col's 2^31 rows")));
            }
            let blocks = (m as u32).div_ceil(IM2COL_ROWS).min(env.device_sms() * 8);
            let cfg = LaunchConfig::new((blocks, 1, 1), (32, IM2COL_ROWS, 1));
            env.launch(KernelSymbol::typed(KernelId::Im2col, d), cfg, args)?;
            next = 1;
            col
        };
        let call = GemmCall::dense(m, n, k, true, self.precision, a, b.require("conv2d", "w")?, y);
        let blas = env.blas("conv2d")?;
        env.library_call(slots, next, !self.has_epilogue(), || blas.gemm(&call))?;
        if self.has_epilogue() {
            launch_bias_act(env, d, y, y, b.get("bias"), m * n, n, self.act, slots.at(next + 1))?;
        }
        Ok(())
    }

    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let (oh, ow) = self.out_hw().expect("validated");
        let (x, w) = (&inputs["x"].data, &inputs["w"].data);
        let bias = inputs.get("bias").map(|t| &t.data);
        let (h, wd, ci, co) = (self.height, self.width, self.in_ch, self.out_ch);
        let kw = self.kernel.1;
        let ks = self.k_dim(); // weights are [out_ch, K] rows
        let mut y = vec![0.0; self.batch * oh * ow * co];
        for n in 0..self.batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..co {
                        let mut acc = bias.map_or(0.0, |b| b[o]);
                        for (ky, kx, iy, ix) in window(oy, ox, self.kernel, self.stride, self.pad, h, wd) {
                            let xo = ((n * h + iy) * wd + ix) * ci;
                            let wo = o * ks + (ky * kw + kx) * ci;
                            acc += (0..ci).map(|c| x[xo + c] * w[wo + c]).sum::<f64>();
                        }
                        y[((n * oh + oy) * ow + ox) * co + o] = self.act.apply(acc);
                    }
                }
            }
        }
        HostTensors::from([("y", HostTensor { shape: vec![self.batch, oh, ow, co], data: y })])
    }

    fn tolerance(&self) -> f64 {
        gemm_tolerance(self.precision)
    }
}

/// Queues `y = act(x + bias[i % channels])` (bias may be null), choosing the 16-byte vector
/// path when sizes and addresses allow it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_bias_act(
    env: &LaunchEnv,
    d: DType,
    y: u64,
    x: u64,
    bias: u64,
    n: usize,
    channels: usize,
    act: Activation,
    stamp: u64,
) -> Result<()> {
    let vec = in_pieces(d, n, &[x, y]);
    let work = if vec { n / (16 / d.bytes()) } else { n };
    let args = KernelArgs::new()
        .ptr(y)
        .ptr(x)
        .ptr(bias)
        .i64(n as i64)
        .i32(channels as i32)
        .i32(act.code())
        .i32(vec as i32)
        .ptr(stamp);
    env.launch_1d(KernelSymbol::typed(KernelId::BiasAct, d), work as u64, args)
}

/// Depthwise 2-D convolution with fused bias and activation; weights [kh, kw, channels].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthwiseConv2d {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub kernel: (usize, usize),
    #[serde(default = "one")]
    pub stride: usize,
    #[serde(default)]
    pub pad: usize,
    #[serde(default)]
    pub act: Activation,
    pub dtype: DType,
}

impl DepthwiseConv2d {
    pub fn out_hw(&self) -> Result<(usize, usize)> {
        window_out_hw("depthwise_conv2d", (self.height, self.width), self.kernel, self.stride, self.pad)
    }
}

impl OpSpec for DepthwiseConv2d {
    fn kind(&self) -> &'static str {
        "depthwise_conv2d"
    }

    fn shape(&self) -> String {
        format!(
            "{} n={} {}x{}x{} k{}x{} s{} p{} {:?}",
            self.dtype,
            self.batch,
            self.height,
            self.width,
            self.channels,
            self.kernel.0,
            self.kernel.1,
            self.stride,
            self.pad,
            self.act
        )
        .to_lowercase()
    }

    fn validate(&self) -> Result<()> {
        positive(
            "depthwise_conv2d",
            &[("batch", self.batch), ("height", self.height), ("width", self.width), ("channels", self.channels)],
        )?;
        let (oh, ow) = self.out_hw()?;
        fits_i32("depthwise_conv2d", "input elements", self.batch * self.height * self.width * self.channels)?;
        fits_i32("depthwise_conv2d", "output elements", self.batch * oh * ow * self.channels)
    }

    fn operands(&self) -> Vec<Operand> {
        let (oh, ow) = self.out_hw().unwrap_or((0, 0));
        let d = self.dtype;
        let fan_in = (self.kernel.0 * self.kernel.1) as f32;
        vec![
            Operand::input("x", d, vec![self.batch, self.height, self.width, self.channels]),
            Operand::weight("w", d, vec![self.kernel.0, self.kernel.1, self.channels], 1.0 / fan_in.sqrt()),
            Operand::weight("bias", d, vec![self.channels], 0.5),
            Operand::output("y", d, vec![self.batch, oh, ow, self.channels]),
        ]
    }

    fn cost(&self) -> Cost {
        let (oh, ow) = self.out_hw().unwrap_or((0, 0));
        let out = (self.batch * oh * ow * self.channels) as f64;
        let taps = (self.kernel.0 * self.kernel.1) as f64;
        let x = (self.batch * self.height * self.width * self.channels) as f64;
        let w = taps * self.channels as f64;
        Cost {
            macs: out * taps,
            flops: out * (2.0 * taps + 1.0 + self.act.flops()),
            dram_bytes: (x + w + self.channels as f64 + out) * self.dtype.bytes() as f64,
            unit: ComputeUnit::Fp32,
        }
    }

    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::DepthwiseConv, self.dtype), self.cost())]
    }

    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let (oh, ow) = self.out_hw()?;
        let window = Window {
            input: (self.batch, self.height, self.width, self.channels),
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            output: (oh, ow),
        };
        let pointers = [
            b.require("depthwise_conv2d", "y")?,
            b.require("depthwise_conv2d", "x")?,
            b.require("depthwise_conv2d", "w")?,
            b.get("bias"),
        ];
        let vec = in_pieces(self.dtype, self.channels, &pointers);
        let args = window.args(pointers, self.act).i32(vec as i32).ptr(stamp);
        let groups = if vec { self.channels / (16 / self.dtype.bytes()) } else { self.channels };
        let work = (self.batch * oh * ow * groups) as u64;
        env.launch_1d(KernelSymbol::typed(KernelId::DepthwiseConv, self.dtype), work, args)
    }

    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let (oh, ow) = self.out_hw().expect("validated");
        let (x, w, bias) = (&inputs["x"].data, &inputs["w"].data, &inputs["bias"].data);
        let c = self.channels;
        let mut y = vec![0.0; self.batch * oh * ow * c];
        for n in 0..self.batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let mut acc = bias[ch];
                        for (ky, kx, iy, ix) in
                            window(oy, ox, self.kernel, self.stride, self.pad, self.height, self.width)
                        {
                            acc += x[((n * self.height + iy) * self.width + ix) * c + ch]
                                * w[(ky * self.kernel.1 + kx) * c + ch];
                        }
                        y[((n * oh + oy) * ow + ox) * c + ch] = self.act.apply(acc);
                    }
                }
            }
        }
        HostTensors::from([("y", HostTensor { shape: vec![self.batch, oh, ow, c], data: y })])
    }

    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype)
    }
}

/// The in-image taps (ky, kx, iy, ix) of the window at output (oy, ox).
fn window(
    oy: usize,
    ox: usize,
    kernel: (usize, usize),
    stride: usize,
    pad: usize,
    h: usize,
    w: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..kernel.0).flat_map(move |ky| {
        (0..kernel.1).filter_map(move |kx| {
            let iy = (oy * stride + ky) as isize - pad as isize;
            let ix = (ox * stride + kx) as isize - pad as isize;
            (iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize).then_some((ky, kx, iy as usize, ix as usize))
        })
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Max,
    /// Mean over the in-image part of the window (padding excluded).
    Avg,
}

/// Windowed max or average pooling, NHWC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool2d {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub kernel: (usize, usize),
    pub stride: usize,
    #[serde(default)]
    pub pad: usize,
    pub mode: PoolMode,
    pub dtype: DType,
}

impl Pool2d {
    pub fn out_hw(&self) -> Result<(usize, usize)> {
        window_out_hw("pool2d", (self.height, self.width), self.kernel, self.stride, self.pad)
    }
}

impl OpSpec for Pool2d {
    fn kind(&self) -> &'static str {
        "pool2d"
    }

    fn shape(&self) -> String {
        format!(
            "{} {:?} n={} {}x{}x{} k{}x{} s{} p{}",
            self.dtype,
            self.mode,
            self.batch,
            self.height,
            self.width,
            self.channels,
            self.kernel.0,
            self.kernel.1,
            self.stride,
            self.pad
        )
        .to_lowercase()
    }

    fn validate(&self) -> Result<()> {
        positive(
            "pool2d",
            &[("batch", self.batch), ("height", self.height), ("width", self.width), ("channels", self.channels)],
        )?;
        if self.pad * 2 > self.kernel.0.min(self.kernel.1) {
            return Err(Error::invalid("pool2d", "padding must be at most half the window"));
        }
        let (oh, ow) = self.out_hw()?;
        fits_i32("pool2d", "input elements", self.batch * self.height * self.width * self.channels)?;
        fits_i32("pool2d", "output elements", self.batch * oh * ow * self.channels)
    }

    fn operands(&self) -> Vec<Operand> {
        let (oh, ow) = self.out_hw().unwrap_or((0, 0));
        vec![
            Operand::input("x", self.dtype, vec![self.batch, self.height, self.width, self.channels]),
            Operand::output("y", self.dtype, vec![self.batch, oh, ow, self.channels]),
        ]
    }

    fn cost(&self) -> Cost {
        let (oh, ow) = self.out_hw().unwrap_or((0, 0));
        let out = (self.batch * oh * ow * self.channels) as f64;
        let x = (self.batch * self.height * self.width * self.channels) as f64;
        Cost {
            macs: 0.0,
            flops: out * (self.kernel.0 * self.kernel.1) as f64,
            dram_bytes: (x + out) * self.dtype.bytes() as f64,
            unit: ComputeUnit::Fp32,
        }
    }

    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::Pool2d, self.dtype), self.cost())]
    }

    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let (oh, ow) = self.out_hw()?;
        let (y, x) = (b.require("pool2d", "y")?, b.require("pool2d", "x")?);
        let vec = in_pieces(self.dtype, self.channels, &[y, x]);
        let groups = if vec { self.channels / (16 / self.dtype.bytes()) } else { self.channels };
        let args = KernelArgs::new()
            .ptr(y)
            .ptr(x)
            .i32(self.batch as i32)
            .i32(self.height as i32)
            .i32(self.width as i32)
            .i32(self.channels as i32)
            .i32(self.kernel.0 as i32)
            .i32(self.kernel.1 as i32)
            .i32(self.stride as i32)
            .i32(self.pad as i32)
            .i32(oh as i32)
            .i32(ow as i32)
            .i32(match self.mode {
                PoolMode::Max => 0,
                PoolMode::Avg => 1,
            })
            .i32(vec as i32)
            .ptr(stamp);
        env.launch_1d(KernelSymbol::typed(KernelId::Pool2d, self.dtype), (self.batch * oh * ow * groups) as u64, args)
    }

    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let (oh, ow) = self.out_hw().expect("validated");
        let x = &inputs["x"].data;
        let c = self.channels;
        let mut y = vec![0.0; self.batch * oh * ow * c];
        for n in 0..self.batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let vals: Vec<f64> =
                            window(oy, ox, self.kernel, self.stride, self.pad, self.height, self.width)
                                .map(|(_, _, iy, ix)| x[((n * self.height + iy) * self.width + ix) * c + ch])
                                .collect();
                        y[((n * oh + oy) * ow + ox) * c + ch] = match self.mode {
                            PoolMode::Max => vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                            PoolMode::Avg => vals.iter().sum::<f64>() / vals.len().max(1) as f64,
                        };
                    }
                }
            }
        }
        HostTensors::from([("y", HostTensor { shape: vec![self.batch, oh, ow, c], data: y })])
    }

    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype)
    }
}

/// Mean over all spatial positions: [n, h, w, c] -> [n, c].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalAvgPool {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub dtype: DType,
}

impl OpSpec for GlobalAvgPool {
    fn kind(&self) -> &'static str {
        "global_avg_pool"
    }

    fn shape(&self) -> String {
        format!("{} n={} {}x{}x{}", self.dtype, self.batch, self.height, self.width, self.channels)
    }

    fn validate(&self) -> Result<()> {
        positive(
            "global_avg_pool",
            &[("batch", self.batch), ("height", self.height), ("width", self.width), ("channels", self.channels)],
        )
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            Operand::input("x", self.dtype, vec![self.batch, self.height, self.width, self.channels]),
            Operand::output("y", self.dtype, vec![self.batch, self.channels]),
        ]
    }

    fn cost(&self) -> Cost {
        let x = (self.batch * self.height * self.width * self.channels) as f64;
        let y = (self.batch * self.channels) as f64;
        Cost { macs: 0.0, flops: x + y, dram_bytes: (x + y) * self.dtype.bytes() as f64, unit: ComputeUnit::Fp32 }
    }

    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::GlobalAvgPool, self.dtype), self.cost())]
    }

    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let args = KernelArgs::new()
            .ptr(b.require("global_avg_pool", "y")?)
            .ptr(b.require("global_avg_pool", "x")?)
            .i32(self.batch as i32)
            .i32((self.height * self.width) as i32)
            .i32(self.channels as i32)
            .ptr(stamp);
        env.launch_1d(
            KernelSymbol::typed(KernelId::GlobalAvgPool, self.dtype),
            (self.batch * self.channels) as u64,
            args,
        )
    }

    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let x = &inputs["x"].data;
        let (hw, c) = (self.height * self.width, self.channels);
        let mut y = vec![0.0; self.batch * c];
        for n in 0..self.batch {
            for ch in 0..c {
                y[n * c + ch] = (0..hw).map(|p| x[(n * hw + p) * c + ch]).sum::<f64>() / hw as f64;
            }
        }
        HostTensors::from([("y", HostTensor { shape: vec![self.batch, c], data: y })])
    }

    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VGG-16's first 3x3 layer after the stem: bf16, 224x224, 64 channels in and out, ReLU.
    fn vgg_layer(batch: usize) -> Conv2d {
        Conv2d {
            batch,
            height: 224,
            width: 224,
            in_ch: 64,
            out_ch: 64,
            kernel: (3, 3),
            stride: 1,
            pad: 1,
            act: Activation::Relu,
            bias: true,
            precision: GemmPrecision::Bf16,
            algo: ConvAlgo::Auto,
        }
    }

    #[test]
    fn bf16_convolutions_with_channels_in_32s_are_one_implicit_gemm() {
        let vgg = vgg_layer(32);
        // the rule without cuDNN; the launches and operands of the path pinned
        assert_eq!(vgg.path_where(false), ConvPath::Implicit);
        let vgg = Conv2d { algo: ConvAlgo::Implicit, ..vgg };
        let launches = vgg.launches();
        assert_eq!(launches.len(), 1);
        assert_eq!(launches[0].cost.unit, ComputeUnit::TensorBf16);
        assert_eq!(launches[0].cost.macs, 32.0 * 224.0 * 224.0 * 64.0 * 9.0 * 64.0);
        assert!(vgg.operands().iter().all(|o| o.name != "col"), "no column buffer");
        // The RGB stem, a plain 1x1, tf32 and a wide layer keep im2col/cuBLAS.
        let auto = Conv2d { algo: ConvAlgo::Auto, ..vgg.clone() };
        let wide = Conv2d { height: 56, width: 56, in_ch: 256, out_ch: 256, ..auto.clone() };
        assert_eq!(wide.path_where(false), ConvPath::Im2colGemm);
        let stem = Conv2d { in_ch: 3, ..auto.clone() };
        assert_eq!(stem.path_where(false), ConvPath::Im2colGemm);
        let stem_gemm = Conv2d { algo: ConvAlgo::Gemm, ..stem.clone() };
        assert!(stem_gemm.operands().iter().any(|o| o.name == "col"));
        let pointwise = Conv2d { kernel: (1, 1), pad: 0, ..auto.clone() };
        assert_eq!(pointwise.path_where(false), ConvPath::Direct);
        let tf32 = Conv2d { precision: GemmPrecision::Tf32, ..auto.clone() };
        assert_eq!(tf32.path_where(false), ConvPath::Im2colGemm);
        // Too few output tiles (ResNet's last stage at batch 1): cuBLAS splits K, the kernel
        // cannot; asked for by name, it runs anyway.
        let small = Conv2d { batch: 1, height: 7, width: 7, in_ch: 512, out_ch: 512, ..auto.clone() };
        assert_eq!(small.path_where(false), ConvPath::Im2colGemm);
        assert_eq!(Conv2d { algo: ConvAlgo::Implicit, ..small.clone() }.path(), ConvPath::Implicit);
        assert_eq!(Conv2d { algo: ConvAlgo::Gemm, ..vgg.clone() }.path(), ConvPath::Im2colGemm);
        // ... but not where it cannot run.
        let err = Conv2d { algo: ConvAlgo::Implicit, ..tf32 }.validate().unwrap_err().to_string();
        assert!(err.contains("bf16 only"), "{err}");
        let err = Conv2d { algo: ConvAlgo::Implicit, ..stem }.validate().unwrap_err().to_string();
        assert!(err.contains("in_ch in multiples of 32"), "{err}");
    }

    #[test]
    fn where_cudnn_loads_auto_takes_it_for_bf16_but_not_for_a_plain_1x1() {
        let layer = Conv2d { height: 56, width: 56, in_ch: 3, ..vgg_layer(8) };
        assert_eq!(layer.path_where(true), ConvPath::Cudnn);
        let pointwise = Conv2d { kernel: (1, 1), pad: 0, ..layer.clone() };
        assert_eq!(pointwise.path_where(true), ConvPath::Direct);
        let tf32 = Conv2d { precision: GemmPrecision::Tf32, ..layer.clone() };
        assert_eq!(tf32.path_where(true), ConvPath::Im2colGemm);
        // pinned: the library call, then coloc's bias + ReLU; no column buffer
        let pinned = Conv2d { algo: ConvAlgo::Cudnn, ..layer.clone() };
        let names: Vec<String> = pinned.launches().iter().map(LaunchSpec::name).collect();
        assert_eq!(names, vec!["cudnn".to_string(), "bias_act_bf16".to_string()]);
        assert!(pinned.launches()[0].is_library());
        assert!(pinned.operands().iter().all(|o| o.name != "col"));
        assert_eq!(pinned.launches()[0].cost.macs, 8.0 * 56.0 * 56.0 * 64.0 * 27.0);
        // without an epilogue, the library call alone
        let bare = Conv2d { act: Activation::None, bias: false, ..pinned.clone() };
        assert_eq!(bare.launches().len(), 1);
        let err = Conv2d { precision: GemmPrecision::F32, ..pinned }.validate().unwrap_err().to_string();
        assert!(err.contains("algo = \"cudnn\" runs bf16 only"), "{err}");
    }

    fn t(shape: Vec<usize>, data: Vec<f64>) -> HostTensor {
        HostTensor { shape, data }
    }

    #[test]
    fn conv_reference_of_a_3x3_box_filter_sums_the_window() {
        let c = Conv2d {
            batch: 1,
            height: 3,
            width: 3,
            in_ch: 1,
            out_ch: 1,
            kernel: (3, 3),
            stride: 1,
            pad: 1,
            act: Activation::None,
            bias: false,
            precision: GemmPrecision::F32,
            algo: ConvAlgo::Auto,
        };
        let x = t(vec![1, 3, 3, 1], (1..=9).map(f64::from).collect());
        let w = t(vec![1, 9], vec![1.0; 9]);
        let y = &c.reference(&HostTensors::from([("x", x), ("w", w)]))["y"];
        // centre sees all nine values; the corner (0,0) sees 1+2+4+5.
        assert_eq!(y.data[4], 45.0);
        assert_eq!(y.data[0], 12.0);
    }

    #[test]
    fn conv_output_size_follows_stride_and_padding() {
        let c = Conv2d {
            batch: 1,
            height: 224,
            width: 224,
            in_ch: 3,
            out_ch: 64,
            kernel: (7, 7),
            stride: 2,
            pad: 3,
            act: Activation::Relu,
            bias: true,
            precision: GemmPrecision::Bf16,
            algo: ConvAlgo::Auto,
        };
        assert_eq!(c.out_hw().unwrap(), (112, 112));
        let too_big = Conv2d { kernel: (300, 300), pad: 0, ..c };
        assert!(too_big.validate().is_err());
    }

    #[test]
    fn max_pool_reference_ignores_padding_and_avg_excludes_it() {
        let mk = |mode| Pool2d {
            batch: 1,
            height: 2,
            width: 2,
            channels: 1,
            kernel: (3, 3),
            stride: 2,
            pad: 1,
            mode,
            dtype: DType::F32,
        };
        let x = || HostTensors::from([("x", t(vec![1, 2, 2, 1], vec![-4.0, -3.0, -2.0, -1.0]))]);
        assert_eq!(mk(PoolMode::Max).reference(&x())["y"].data, vec![-1.0]);
        assert_eq!(mk(PoolMode::Avg).reference(&x())["y"].data, vec![-2.5]);
    }

    #[test]
    fn depthwise_reference_applies_bias_and_relu6() {
        let d = DepthwiseConv2d {
            batch: 1,
            height: 1,
            width: 1,
            channels: 2,
            kernel: (1, 1),
            stride: 1,
            pad: 0,
            act: Activation::Relu6,
            dtype: DType::F32,
        };
        let inputs = HostTensors::from([
            ("x", t(vec![1, 1, 1, 2], vec![2.0, -1.0])),
            ("w", t(vec![1, 1, 2], vec![5.0, 1.0])),
            ("bias", t(vec![2], vec![1.0, 0.5])),
        ]);
        assert_eq!(d.reference(&inputs)["y"].data, vec![6.0, 0.0]);
    }
}
