//! The operator shapes `coloc kernels check` and `coloc kernels bench` run.

use crate::ceilings::Ceilings;
use crate::gpu::{DeviceInfo, GemmPrecision};
use crate::ops::{
    AddAct, AttentionDecode, AttentionPrefill, BiasAct, Conv2d, ConvAlgo, DepthwiseConv2d, Embedding, Gemm,
    GlobalAvgPool, KvAppend, LayerNorm, Linear, Op, PatchTokens, Pool2d, PoolMode, Softmax, Stressor, StressorKind,
};
use crate::types::{Activation, DType};

use DType::{Bf16, F32};
use GemmPrecision as P;

fn gemm(m: usize, n: usize, k: usize, batch: usize, precision: P, b_transposed: bool) -> Op {
    Op::Gemm(Gemm { m, n, k, batch, precision, b_transposed })
}

#[allow(clippy::too_many_arguments)]
fn conv(
    n: usize,
    h: usize,
    w: usize,
    ci: usize,
    co: usize,
    k: usize,
    s: usize,
    p: usize,
    act: Activation,
    precision: P,
) -> Op {
    Op::Conv2d(Conv2d {
        batch: n,
        height: h,
        width: w,
        in_ch: ci,
        out_ch: co,
        kernel: (k, k),
        stride: s,
        pad: p,
        act,
        bias: true,
        precision,
        algo: ConvAlgo::Auto,
    })
}

/// A bf16 1x1 convolution of stride 2 without bias or activation (a ResNet downsample), on a
/// square `hw` image, pinned to `algo`.
fn strided_pointwise(n: usize, hw: usize, ci: usize, co: usize, algo: ConvAlgo) -> Op {
    let plain = conv(n, hw, hw, ci, co, 1, 2, 0, Activation::None, P::Bf16);
    match plain {
        Op::Conv2d(c) => Op::Conv2d(Conv2d { bias: false, algo, ..c }),
        other => other,
    }
}

/// `op` (a convolution) pinned to `algo`.
fn with_algo(op: Op, algo: ConvAlgo) -> Op {
    match op {
        Op::Conv2d(c) => Op::Conv2d(Conv2d { algo, ..c }),
        other => other,
    }
}

/// Small shapes with odd sizes (scalar tails, partial tiles, padding edges), every operator
/// and both element types: cheap to check against the CPU.
pub fn check_cases() -> Vec<Op> {
    use Activation::*;
    vec![
        gemm(129, 67, 95, 1, P::F32, false),
        gemm(64, 48, 80, 3, P::Tf32, false),
        gemm(130, 72, 96, 2, P::Bf16, true),
        gemm(33, 100, 17, 1, P::Bf16, false),
        Op::Linear(Linear {
            rows: 37,
            in_features: 29,
            out_features: 41,
            row_stride: 0,
            act: Gelu,
            bias: true,
            precision: P::F32,
        }),
        Op::Linear(Linear {
            rows: 3,
            in_features: 64,
            out_features: 48,
            row_stride: 320,
            act: Tanh,
            bias: true,
            precision: P::Bf16,
        }),
        Op::Linear(Linear {
            rows: 16,
            in_features: 96,
            out_features: 80,
            row_stride: 0,
            act: None,
            bias: false,
            precision: P::Tf32,
        }),
        // cuBLASLt with its epilogue fused: bias; ReLU + bias; tanh-GELU + bias on strided rows
        Op::Linear(Linear {
            rows: 37,
            in_features: 96,
            out_features: 80,
            row_stride: 0,
            act: None,
            bias: true,
            precision: P::Bf16,
        }),
        Op::Linear(Linear {
            rows: 130,
            in_features: 64,
            out_features: 200,
            row_stride: 0,
            act: Relu,
            bias: true,
            precision: P::Bf16,
        }),
        Op::Linear(Linear {
            rows: 5,
            in_features: 64,
            out_features: 72,
            row_stride: 192,
            act: GeluTanh,
            bias: true,
            precision: P::Bf16,
        }),
        // im2col + cuBLAS, pinned for bf16 (where cuDNN loads, `auto` takes it instead)
        conv(2, 9, 11, 5, 7, 3, 1, 1, Relu, P::F32),
        with_algo(conv(1, 15, 15, 3, 16, 7, 2, 3, Relu, P::Bf16), ConvAlgo::Gemm),
        conv(2, 7, 7, 16, 24, 1, 1, 0, None, P::Tf32),
        with_algo(conv(2, 8, 8, 8, 16, 3, 2, 1, Relu6, P::Bf16), ConvAlgo::Gemm),
        // im2col's 16-byte pieces: f32 with 4 channels, bf16 with 16 and a 5x5 window past the edges.
        conv(2, 10, 9, 4, 8, 3, 2, 1, None, P::Tf32),
        with_algo(conv(1, 6, 7, 16, 8, 5, 1, 2, Relu, P::Bf16), ConvAlgo::Gemm),
        // cuDNN (not run where it is missing): a ResNet stem (3 input channels, 7x7 stride 2),
        // a 3x3 with odd sizes, a strided 1x1 without bias or activation, a 5x5 past the edges
        with_algo(conv(2, 30, 28, 3, 64, 7, 2, 3, Relu, P::Bf16), ConvAlgo::Cudnn),
        with_algo(conv(3, 13, 11, 24, 40, 3, 1, 1, Relu6, P::Bf16), ConvAlgo::Cudnn),
        strided_pointwise(2, 14, 64, 128, ConvAlgo::Cudnn),
        with_algo(conv(1, 9, 10, 16, 8, 5, 2, 2, Gelu, P::Bf16), ConvAlgo::Cudnn),
        // The implicit GEMM (bf16, channels in 32s; pinned, these shapes are too small for
        // `auto` to pick it): partial tiles both ways and the image edges; stride 2 over three
        // channel tiles; a strided 1x1 without bias; many pixel tiles.
        with_algo(conv(2, 9, 7, 32, 24, 3, 1, 1, Relu, P::Bf16), ConvAlgo::Implicit),
        with_algo(conv(1, 12, 10, 64, 136, 3, 2, 1, Gelu, P::Bf16), ConvAlgo::Implicit),
        strided_pointwise(3, 20, 32, 16, ConvAlgo::Implicit),
        with_algo(conv(2, 40, 36, 32, 64, 3, 1, 1, Relu6, P::Bf16), ConvAlgo::Implicit),
        Op::DepthwiseConv2d(DepthwiseConv2d {
            batch: 2,
            height: 10,
            width: 9,
            channels: 13,
            kernel: (3, 3),
            stride: 2,
            pad: 1,
            act: Relu6,
            dtype: F32,
        }),
        Op::DepthwiseConv2d(DepthwiseConv2d {
            batch: 1,
            height: 14,
            width: 14,
            channels: 32,
            kernel: (3, 3),
            stride: 1,
            pad: 1,
            act: Relu6,
            dtype: Bf16,
        }),
        Op::Pool2d(Pool2d {
            batch: 2,
            height: 9,
            width: 9,
            channels: 5,
            kernel: (3, 3),
            stride: 2,
            pad: 1,
            mode: PoolMode::Max,
            dtype: F32,
        }),
        Op::Pool2d(Pool2d {
            batch: 1,
            height: 8,
            width: 8,
            channels: 16,
            kernel: (2, 2),
            stride: 2,
            pad: 0,
            mode: PoolMode::Avg,
            dtype: Bf16,
        }),
        // f32 in 16-byte pieces (channels a multiple of 4), windows cut by the border
        Op::DepthwiseConv2d(DepthwiseConv2d {
            batch: 3,
            height: 11,
            width: 7,
            channels: 12,
            kernel: (5, 5),
            stride: 2,
            pad: 2,
            act: Relu,
            dtype: F32,
        }),
        Op::Pool2d(Pool2d {
            batch: 2,
            height: 9,
            width: 11,
            channels: 24,
            kernel: (3, 3),
            stride: 2,
            pad: 1,
            mode: PoolMode::Avg,
            dtype: F32,
        }),
        Op::Pool2d(Pool2d {
            batch: 3,
            height: 10,
            width: 10,
            channels: 40,
            kernel: (3, 3),
            stride: 2,
            pad: 1,
            mode: PoolMode::Max,
            dtype: Bf16,
        }),
        Op::GlobalAvgPool(GlobalAvgPool { batch: 3, height: 7, width: 7, channels: 40, dtype: F32 }),
        Op::GlobalAvgPool(GlobalAvgPool { batch: 2, height: 7, width: 7, channels: 64, dtype: Bf16 }),
        Op::BiasAct(BiasAct { rows: 37, channels: 13, act: Gelu, bias: true, dtype: F32 }),
        Op::BiasAct(BiasAct { rows: 64, channels: 256, act: Silu, bias: true, dtype: Bf16 }),
        Op::BiasAct(BiasAct { rows: 32, channels: 96, act: Relu, bias: false, dtype: F32 }),
        Op::BiasAct(BiasAct { rows: 5, channels: 7, act: GeluTanh, bias: true, dtype: Bf16 }),
        Op::AddAct(AddAct { elements: 1001, act: Relu, dtype: F32 }),
        Op::AddAct(AddAct { elements: 4096, act: None, dtype: Bf16 }),
        Op::LayerNorm(LayerNorm { rows: 7, dim: 768, eps: 1e-5, dtype: F32 }),
        Op::LayerNorm(LayerNorm { rows: 33, dim: 100, eps: 1e-12, dtype: Bf16 }),
        // a warp per row: 768 and the largest row that fits its registers (2048 bf16)
        Op::LayerNorm(LayerNorm { rows: 37, dim: 768, eps: 1e-12, dtype: Bf16 }),
        Op::LayerNorm(LayerNorm { rows: 19, dim: 2048, eps: 1e-5, dtype: Bf16 }),
        Op::LayerNorm(LayerNorm { rows: 5, dim: 2304, eps: 1e-5, dtype: Bf16 }),
        Op::Softmax(Softmax { rows: 5, len: 1000, scale: 1.0, dtype: F32 }),
        Op::Softmax(Softmax { rows: 24, len: 128, scale: 0.125, dtype: Bf16 }),
        Op::AttentionPrefill(AttentionPrefill { batch: 2, seq: 37, heads: 3, head_dim: 64, causal: true, dtype: F32 }),
        Op::AttentionPrefill(AttentionPrefill {
            batch: 1,
            seq: 70,
            heads: 2,
            head_dim: 128,
            causal: false,
            dtype: Bf16,
        }),
        Op::AttentionPrefill(AttentionPrefill { batch: 1, seq: 9, heads: 4, head_dim: 32, causal: false, dtype: F32 }),
        // bf16 runs on tensor cores: four key tiles with a ragged last one (ViT's 197 tokens),
        // the causal diagonal across tiles, and a sequence shorter than one tile.
        Op::AttentionPrefill(AttentionPrefill {
            batch: 2,
            seq: 197,
            heads: 3,
            head_dim: 64,
            causal: false,
            dtype: Bf16,
        }),
        Op::AttentionPrefill(AttentionPrefill {
            batch: 1,
            seq: 130,
            heads: 2,
            head_dim: 64,
            causal: true,
            dtype: Bf16,
        }),
        Op::AttentionPrefill(AttentionPrefill { batch: 3, seq: 9, heads: 4, head_dim: 32, causal: false, dtype: Bf16 }),
        Op::AttentionDecode(AttentionDecode { batch: 2, heads: 3, head_dim: 64, max_len: 80, len: 77, dtype: F32 }),
        Op::AttentionDecode(AttentionDecode { batch: 3, heads: 2, head_dim: 128, max_len: 40, len: 1, dtype: Bf16 }),
        Op::AttentionDecode(AttentionDecode { batch: 1, heads: 1, head_dim: 32, max_len: 100, len: 100, dtype: F32 }),
        // longer than the kernel's score chunk (2048 keys): the softmax carries across chunks
        Op::AttentionDecode(AttentionDecode {
            batch: 1,
            heads: 2,
            head_dim: 64,
            max_len: 4500,
            len: 4500,
            dtype: Bf16,
        }),
        Op::KvAppend(KvAppend { batch: 2, heads: 3, head_dim: 64, max_len: 16, pos: 5, dtype: Bf16 }),
        Op::Embedding(Embedding {
            rows: 50,
            dim: 96,
            vocab: 1000,
            seq: 25,
            max_positions: 64,
            pos_offset: 3,
            dtype: Bf16,
        }),
        Op::Embedding(Embedding {
            rows: 17,
            dim: 40,
            vocab: 300,
            seq: 17,
            max_positions: 0,
            pos_offset: 0,
            dtype: F32,
        }),
        Op::PatchTokens(PatchTokens { batch: 2, patches: 9, dim: 48, dtype: F32 }),
        Op::Stressor(Stressor { kind: StressorKind::Fma { iters: 1000 }, blocks: 4, threads: 128 }),
        Op::Stressor(Stressor {
            kind: StressorKind::Stream { bytes: (1 << 20) + 16, passes: 2 },
            blocks: 8,
            threads: 256,
        }),
        Op::Stressor(Stressor { kind: StressorKind::L2 { bytes: 64 << 10, passes: 7 }, blocks: 4, threads: 256 }),
        Op::Stressor(Stressor { kind: StressorKind::Smem { iters: 500, stride: 1 }, blocks: 2, threads: 256 }),
        Op::Stressor(Stressor { kind: StressorKind::Smem { iters: 300, stride: 32 }, blocks: 2, threads: 64 }),
        Op::Stressor(Stressor { kind: StressorKind::Chase { entries: 1 << 16, steps: 1000 }, blocks: 2, threads: 32 }),
    ]
}

/// One benchmarked shape and why it is there.
pub struct BenchCase {
    pub op: Op,
    pub note: &'static str,
}

/// Target of the bf16 GEMM benchmark (issue #2): 8192^3.
pub const GEMM_TARGET_SIZE: usize = 8192;
/// Buffer size of the DRAM-streaming target: 1 GiB per buffer, far beyond the L2.
pub const STREAM_TARGET_BYTES: u64 = 1 << 30;

/// (batch, seq) of the attention-prefill target (issue #8): head 64, 12 heads.
pub const ATTENTION_TARGET_SHAPES: [(usize, usize); 3] = [(8, 128), (16, 256), (8, 512)];
/// (spatial size, channels) of VGG-16's 3x3 convolutions at batch 32 (the second of each
/// stage, channels in = out), the convolution target of issue #8.
pub const VGG_TARGET_LAYERS: [(usize, usize); 5] = [(224, 64), (112, 128), (56, 256), (28, 512), (14, 512)];
/// Batch of the convolution target.
pub const VGG_TARGET_BATCH: usize = 32;

/// An attention-prefill shape of the target: bf16, 12 heads of 64.
pub fn attention_target_op(batch: usize, seq: usize) -> Op {
    Op::AttentionPrefill(AttentionPrefill { batch, seq, heads: 12, head_dim: 64, causal: false, dtype: Bf16 })
}

/// A VGG-16 3x3 convolution of the target: bf16, ReLU, padding 1.
pub fn vgg_target_op(size: usize, channels: usize) -> Op {
    conv(VGG_TARGET_BATCH, size, size, channels, channels, 3, 1, 1, Activation::Relu, P::Bf16)
}

/// Inference-sized shapes on this device, plus the stressors at full intensity.
pub fn bench_cases(info: &DeviceInfo) -> Vec<BenchCase> {
    use Activation::*;
    let sms = info.sm_count;
    let l2_half = (info.l2_bytes / 2) & !0xffff;
    let c = |op, note| BenchCase { op, note };
    let mut cases = vec![
        c(
            gemm(GEMM_TARGET_SIZE, GEMM_TARGET_SIZE, GEMM_TARGET_SIZE, 1, P::Bf16, false),
            "target: >= 70% of the bf16 matrix ceiling",
        ),
        c(gemm(4096, 4096, 4096, 1, P::Bf16, false), "bf16 GEMM, mid size"),
        c(gemm(8192, 8192, 8192, 1, P::Tf32, false), "tf32 GEMM"),
        c(gemm(4096, 4096, 4096, 1, P::F32, false), "f32 GEMM (no tensor cores)"),
        c(
            Op::Linear(Linear {
                rows: 1024,
                in_features: 768,
                out_features: 3072,
                row_stride: 0,
                act: Gelu,
                bias: true,
                precision: P::Bf16,
            }),
            "BERT-base FFN up-projection + GELU, batch 8 x seq 128",
        ),
        c(gemm(128, 128, 64, 96, P::Bf16, false), "strided-batched, attention-sized"),
        c(conv(8, 224, 224, 3, 64, 7, 2, 3, Relu, P::Bf16), "ResNet-50 stem"),
        c(conv(8, 56, 56, 64, 64, 3, 1, 1, Relu, P::Bf16), "ResNet-50 3x3 in stage 1"),
        c(conv(8, 56, 56, 256, 64, 1, 1, 0, Relu, P::Bf16), "ResNet-50 1x1 reduce (direct GEMM)"),
        c(
            Op::DepthwiseConv2d(DepthwiseConv2d {
                batch: 8,
                height: 112,
                width: 112,
                channels: 96,
                kernel: (3, 3),
                stride: 2,
                pad: 1,
                act: Relu6,
                dtype: Bf16,
            }),
            "MobileNetV2 depthwise",
        ),
        c(
            Op::Pool2d(Pool2d {
                batch: 8,
                height: 112,
                width: 112,
                channels: 64,
                kernel: (3, 3),
                stride: 2,
                pad: 1,
                mode: PoolMode::Max,
                dtype: Bf16,
            }),
            "ResNet-50 max pool",
        ),
        c(
            Op::GlobalAvgPool(GlobalAvgPool { batch: 8, height: 7, width: 7, channels: 2048, dtype: Bf16 }),
            "ResNet-50 head",
        ),
        c(
            Op::BiasAct(BiasAct { rows: 1024, channels: 3072, act: Gelu, bias: true, dtype: Bf16 }),
            "BERT FFN bias + GELU",
        ),
        c(Op::AddAct(AddAct { elements: 8 * 56 * 56 * 256, act: Relu, dtype: Bf16 }), "ResNet-50 residual + ReLU"),
        c(Op::LayerNorm(LayerNorm { rows: 1024, dim: 768, eps: 1e-12, dtype: Bf16 }), "BERT layer norm"),
        c(
            Op::Softmax(Softmax { rows: 8 * 12 * 128, len: 128, scale: 0.125, dtype: Bf16 }),
            "BERT attention scores, unfused",
        ),
        c(
            Op::AttentionPrefill(AttentionPrefill {
                batch: 8,
                seq: 197,
                heads: 12,
                head_dim: 64,
                causal: false,
                dtype: Bf16,
            }),
            "ViT-B/16 attention",
        ),
        c(
            Op::AttentionPrefill(AttentionPrefill {
                batch: 8,
                seq: 512,
                heads: 12,
                head_dim: 64,
                causal: true,
                dtype: Bf16,
            }),
            "causal prefill, 512 tokens",
        ),
        c(
            Op::AttentionDecode(AttentionDecode {
                batch: 8,
                heads: 12,
                head_dim: 64,
                max_len: 1024,
                len: 1024,
                dtype: Bf16,
            }),
            "GPT-2 decode over a 1024-token cache",
        ),
        c(
            Op::KvAppend(KvAppend { batch: 8, heads: 12, head_dim: 64, max_len: 1024, pos: 1023, dtype: Bf16 }),
            "GPT-2 cache append",
        ),
        c(
            Op::Embedding(Embedding {
                rows: 1024,
                dim: 768,
                vocab: 30522,
                seq: 128,
                max_positions: 512,
                pos_offset: 0,
                dtype: Bf16,
            }),
            "BERT embeddings",
        ),
        c(Op::PatchTokens(PatchTokens { batch: 8, patches: 196, dim: 768, dtype: Bf16 }), "ViT-B/16 tokens"),
        c(
            Op::Stressor(Stressor::full_device(StressorKind::Fma { iters: 20_000 }, sms)),
            "compute stressor, full device",
        ),
        c(
            Op::Stressor(Stressor::full_device(StressorKind::Stream { bytes: STREAM_TARGET_BYTES, passes: 1 }, sms)),
            "target: >= 85% of the copy bandwidth",
        ),
        c(
            Op::Stressor(Stressor::full_device(StressorKind::L2 { bytes: l2_half, passes: 20 }, sms)),
            "L2 stressor, half the L2",
        ),
        c(
            Op::Stressor(Stressor::full_device(StressorKind::Smem { iters: 4096, stride: 1 }, sms)),
            "shared-memory stressor",
        ),
        c(
            Op::Stressor(Stressor::full_device(StressorKind::Chase { entries: 1 << 28, steps: 2000 }, sms)),
            "DRAM latency: 1 GiB chase table",
        ),
    ];
    for (batch, seq) in ATTENTION_TARGET_SHAPES {
        cases.push(c(attention_target_op(batch, seq), "target: >= 35% of the bf16 matrix ceiling (worst shape)"));
    }
    for (size, channels) in VGG_TARGET_LAYERS {
        cases.push(c(vgg_target_op(size, channels), "target: >= 45% of the bf16 matrix ceiling (worst layer)"));
    }
    // The same layers on the paths `auto` did not pick, to keep the choice honest (cuDNN
    // only where it loads).
    let others: Vec<ConvAlgo> = [ConvAlgo::Gemm, ConvAlgo::Implicit, ConvAlgo::Cudnn]
        .into_iter()
        .filter(|a| *a != ConvAlgo::Cudnn || crate::gpu::libs::cudnn_present())
        .collect();
    for (size, channels) in VGG_TARGET_LAYERS {
        let op = vgg_target_op(size, channels);
        let Op::Conv2d(auto) = &op else { continue };
        for &algo in &others {
            if (Conv2d { algo, ..auto.clone() }).path() != auto.path() {
                cases.push(c(with_algo(op.clone(), algo), "a path auto did not pick, for comparison"));
            }
        }
    }
    cases
}

/// Stressors sized, from the measured ceilings, to run about `target_us` on this device: the
/// kernels the instrumentation-overhead comparison uses.
pub fn overhead_cases(info: &DeviceInfo, ceilings: &Ceilings, target_us: f64) -> Vec<Op> {
    let sms = info.sm_count;
    let full = Stressor::full_device(StressorKind::Fma { iters: 1 }, sms);
    let fma_iters = (target_us * 1e-6 * ceilings.fp32_fma_tflops * 1e12 / (16.0 * full.total_threads() as f64))
        .round()
        .max(1.0) as u64;
    let stream_bytes = ((target_us * 1e-6 * ceilings.copy_gbps * 1e9 / 2.0) as u64).max(1 << 20) & !0xfff;
    vec![
        Op::Stressor(Stressor::full_device(StressorKind::Stream { bytes: stream_bytes, passes: 1 }, sms)),
        Op::Stressor(Stressor::full_device(StressorKind::Fma { iters: fma_iters }, sms)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::OpSpec;

    #[test]
    fn every_check_case_is_valid_and_small() {
        for op in check_cases() {
            op.validate().unwrap_or_else(|e| panic!("{}: {e}", op.label()));
            let bytes: usize = op.operands().iter().map(|o| o.bytes()).sum();
            assert!(bytes < 16 << 20, "{} needs {bytes} bytes", op.label());
        }
    }

    #[test]
    fn check_cases_cover_every_operator_kind_and_both_dtypes() {
        let kinds: std::collections::BTreeSet<&str> = check_cases().iter().map(|o| o.kind()).collect();
        for k in [
            "gemm",
            "conv2d",
            "depthwise_conv2d",
            "pool2d",
            "global_avg_pool",
            "bias_act",
            "add_act",
            "layer_norm",
            "softmax",
            "attention_prefill",
            "attention_decode",
            "kv_append",
            "embedding",
            "patch_tokens",
            "stress_fma",
            "stress_stream",
            "stress_l2",
            "stress_smem",
            "stress_chase",
        ] {
            assert!(kinds.contains(k), "no check case for {k}");
        }
        let labels: Vec<String> = check_cases().iter().map(|o| o.label()).collect();
        assert!(labels.iter().any(|l| l.contains("bf16")) && labels.iter().any(|l| l.contains("f32")));
    }

    #[test]
    fn launch_costs_add_up_to_the_operator_cost() {
        for op in check_cases() {
            let launches = op.launches();
            assert!(
                (1..=crate::ops::MAX_LAUNCHES_PER_OP).contains(&launches.len()),
                "{}: {} launches",
                op.label(),
                launches.len()
            );
            let sum = crate::ops::Cost::sum(launches.iter().map(|l| l.cost));
            let c = op.cost();
            for (what, a, b) in [("flops", sum.flops, c.flops), ("bytes", sum.dram_bytes, c.dram_bytes)] {
                assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{}: {what} {a} vs {b}", op.label());
            }
            assert_eq!(sum.macs, c.macs, "{}", op.label());
            assert_eq!(sum.unit, c.unit, "{}", op.label());
        }
    }

    #[test]
    fn convolutions_and_linear_layers_time_their_gemm_as_a_launch_of_its_own() {
        let conv = check_cases().into_iter().find(|o| o.kind() == "conv2d" && o.launches().len() == 3).unwrap();
        let names: Vec<String> = conv.launches().iter().map(|l| l.name()).collect();
        assert_eq!(names[1], "cublas", "{names:?}");
        assert!(names[0].starts_with("im2col") && names[2].starts_with("bias_act"), "{names:?}");
        // the GEMM carries all of the multiply-accumulates
        assert_eq!(conv.launches()[1].cost.macs, conv.cost().macs);
    }
}
