//! Names of coloc's CUDA modules and kernels. Sources are `.cu` files under `kernels/cuda/`,
//! embedded in the binary; a kernel is named by [`KernelId`] (plus its element type and, for
//! attention, its head dimension), never by a bare string.

use serde::{Deserialize, Serialize};

use crate::types::DType;

/// Text prepended to every module before compilation.
pub const COMMON_HEADER: &str = include_str!("../cuda/common.cuh");

/// One `.cu` file, compiled by NVRTC as one program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CudaModule {
    Elementwise,
    Cnn,
    Norm,
    Attention,
    /// Prefill attention on tensor cores (mma.sync, cp.async): compute capability 8.0 or newer.
    AttentionMma,
    /// Convolution as an implicit GEMM on tensor cores: compute capability 8.0 or newer.
    ConvMma,
    Stressors,
    Probes,
    /// wgmma throughput probe; Hopper only (compiled for sm_90a).
    TensorPeak,
}

impl CudaModule {
    pub const ALL: [CudaModule; 9] = [
        CudaModule::Elementwise,
        CudaModule::Cnn,
        CudaModule::Norm,
        CudaModule::Attention,
        CudaModule::AttentionMma,
        CudaModule::ConvMma,
        CudaModule::Stressors,
        CudaModule::Probes,
        CudaModule::TensorPeak,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            CudaModule::Elementwise => "elementwise.cu",
            CudaModule::Cnn => "cnn.cu",
            CudaModule::Norm => "norm.cu",
            CudaModule::Attention => "attention.cu",
            CudaModule::AttentionMma => "attention_mma.cu",
            CudaModule::ConvMma => "conv_mma.cu",
            CudaModule::Stressors => "stressors.cu",
            CudaModule::Probes => "probes.cu",
            CudaModule::TensorPeak => "tensor_peak.cu",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            CudaModule::Elementwise => include_str!("../cuda/elementwise.cu"),
            CudaModule::Cnn => include_str!("../cuda/cnn.cu"),
            CudaModule::Norm => include_str!("../cuda/norm.cu"),
            CudaModule::Attention => include_str!("../cuda/attention.cu"),
            // The tensor-core modules share mma.cuh, which older GPUs cannot compile.
            CudaModule::AttentionMma => {
                concat!(include_str!("../cuda/mma.cuh"), include_str!("../cuda/attention_mma.cu"))
            }
            CudaModule::ConvMma => concat!(include_str!("../cuda/mma.cuh"), include_str!("../cuda/conv_mma.cu")),
            CudaModule::Stressors => include_str!("../cuda/stressors.cu"),
            CudaModule::Probes => include_str!("../cuda/probes.cu"),
            CudaModule::TensorPeak => include_str!("../cuda/tensor_peak.cu"),
        }
    }

    /// The architecture to compile for on a device of compute capability `cc`, or `None`
    /// where the module cannot run (see [`CudaModule::requirement`]). The tensor probe uses
    /// wgmma, which exists only in the arch-specific sm_90a target.
    pub fn arch_for(self, cc: (u32, u32)) -> Option<String> {
        match self {
            CudaModule::TensorPeak if cc != (9, 0) => None,
            CudaModule::TensorPeak => Some("sm_90a".into()),
            CudaModule::AttentionMma | CudaModule::ConvMma if cc < (8, 0) => None,
            _ => Some(format!("sm_{}{}", cc.0, cc.1)),
        }
    }

    /// What a device needs to run this module, for the error where it cannot.
    pub fn requirement(self) -> &'static str {
        match self {
            CudaModule::TensorPeak => "a Hopper (sm_90) GPU",
            CudaModule::AttentionMma | CudaModule::ConvMma => {
                "compute capability 8.0 or newer (bf16 mma.sync); f32 and tf32 models run there"
            }
            _ => "nothing beyond a CUDA GPU",
        }
    }
}

/// Every kernel coloc launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KernelId {
    BiasAct,
    AddAct,
    Embedding,
    PatchTokens,
    KvAppend,
    Im2col,
    DepthwiseConv,
    Pool2d,
    GlobalAvgPool,
    LayerNorm,
    Softmax,
    AttentionPrefill,
    AttentionDecode,
    /// Prefill attention on tensor cores; bf16 only.
    AttentionPrefillMma,
    /// Convolution as an implicit GEMM on tensor cores; bf16 only.
    ConvImplicit,
    StressFma,
    StressStream,
    StressL2,
    StressSmem,
    StressChase,
    StampPoint,
    BlockUntil,
    ClockPing,
    SmCensus,
    TimerResolution,
    FillUniform,
    FillIds,
    FillChase,
    TensorPeakBf16,
    TensorPeakTf32,
}

/// Head dimensions the attention kernels are instantiated for.
pub const ATTENTION_HEAD_DIMS: [u32; 3] = [32, 64, 128];

impl KernelId {
    pub const ALL: [KernelId; 30] = [
        KernelId::BiasAct,
        KernelId::AddAct,
        KernelId::Embedding,
        KernelId::PatchTokens,
        KernelId::KvAppend,
        KernelId::Im2col,
        KernelId::DepthwiseConv,
        KernelId::Pool2d,
        KernelId::GlobalAvgPool,
        KernelId::LayerNorm,
        KernelId::Softmax,
        KernelId::AttentionPrefill,
        KernelId::AttentionDecode,
        KernelId::AttentionPrefillMma,
        KernelId::ConvImplicit,
        KernelId::StressFma,
        KernelId::StressStream,
        KernelId::StressL2,
        KernelId::StressSmem,
        KernelId::StressChase,
        KernelId::StampPoint,
        KernelId::BlockUntil,
        KernelId::ClockPing,
        KernelId::SmCensus,
        KernelId::TimerResolution,
        KernelId::FillUniform,
        KernelId::FillIds,
        KernelId::FillChase,
        KernelId::TensorPeakBf16,
        KernelId::TensorPeakTf32,
    ];

    pub fn module(self) -> CudaModule {
        use KernelId::*;
        match self {
            BiasAct | AddAct | Embedding | PatchTokens | KvAppend => CudaModule::Elementwise,
            Im2col | DepthwiseConv | Pool2d | GlobalAvgPool => CudaModule::Cnn,
            LayerNorm | Softmax => CudaModule::Norm,
            AttentionPrefill | AttentionDecode => CudaModule::Attention,
            AttentionPrefillMma => CudaModule::AttentionMma,
            ConvImplicit => CudaModule::ConvMma,
            StressFma | StressStream | StressL2 | StressSmem | StressChase => CudaModule::Stressors,
            StampPoint | BlockUntil | ClockPing | SmCensus | TimerResolution | FillUniform | FillIds | FillChase => {
                CudaModule::Probes
            }
            TensorPeakBf16 | TensorPeakTf32 => CudaModule::TensorPeak,
        }
    }

    /// The C name before any element-type or head-dimension suffix.
    pub fn base_name(self) -> &'static str {
        use KernelId::*;
        match self {
            BiasAct => "bias_act",
            AddAct => "add_act",
            Embedding => "embedding",
            PatchTokens => "patch_tokens",
            KvAppend => "kv_append",
            Im2col => "im2col",
            DepthwiseConv => "depthwise_conv",
            Pool2d => "pool2d",
            GlobalAvgPool => "global_avg_pool",
            LayerNorm => "layer_norm",
            Softmax => "softmax",
            AttentionPrefill => "attention_prefill",
            AttentionDecode => "attention_decode",
            AttentionPrefillMma => "attention_prefill_mma",
            ConvImplicit => "conv_implicit",
            StressFma => "stress_fma",
            StressStream => "stress_stream",
            StressL2 => "stress_l2",
            StressSmem => "stress_smem",
            StressChase => "stress_chase",
            StampPoint => "stamp_point",
            BlockUntil => "block_until",
            ClockPing => "clock_ping",
            SmCensus => "sm_census",
            TimerResolution => "timer_resolution",
            FillUniform => "fill_uniform",
            FillIds => "fill_ids",
            FillChase => "fill_chase",
            TensorPeakBf16 => "tensor_peak_bf16",
            TensorPeakTf32 => "tensor_peak_tf32",
        }
    }

    /// The element types this kernel is instantiated for (`_f32`, `_bf16`); empty for
    /// kernels without one.
    pub fn dtypes(self) -> &'static [DType] {
        if matches!(self, KernelId::AttentionPrefillMma | KernelId::ConvImplicit) {
            &[DType::Bf16]
        } else if self.is_typed() {
            &DType::ALL
        } else {
            &[]
        }
    }

    fn is_typed(self) -> bool {
        use KernelId::*;
        matches!(
            self,
            BiasAct
                | AddAct
                | Embedding
                | PatchTokens
                | KvAppend
                | Im2col
                | DepthwiseConv
                | Pool2d
                | GlobalAvgPool
                | LayerNorm
                | Softmax
                | AttentionPrefill
                | AttentionDecode
                | FillUniform
        )
    }

    /// Kernels instantiated once per attention head dimension (`_d64`, ...).
    pub fn is_per_head_dim(self) -> bool {
        matches!(self, KernelId::AttentionPrefill | KernelId::AttentionDecode | KernelId::AttentionPrefillMma)
    }

    /// Every C symbol this id stands for.
    pub fn symbols(self) -> Vec<KernelSymbol> {
        let dtypes: Vec<Option<DType>> =
            if self.dtypes().is_empty() { vec![None] } else { self.dtypes().iter().map(|d| Some(*d)).collect() };
        let dims: Vec<Option<u32>> =
            if self.is_per_head_dim() { ATTENTION_HEAD_DIMS.iter().map(|d| Some(*d)).collect() } else { vec![None] };
        let mut out = Vec::new();
        for dtype in &dtypes {
            for head_dim in &dims {
                out.push(KernelSymbol { id: self, dtype: *dtype, head_dim: *head_dim });
            }
        }
        out
    }
}

/// One concrete kernel: an id with its element type and head dimension where it has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KernelSymbol {
    pub id: KernelId,
    pub dtype: Option<DType>,
    pub head_dim: Option<u32>,
}

impl KernelSymbol {
    pub fn plain(id: KernelId) -> Self {
        KernelSymbol { id, dtype: None, head_dim: None }
    }

    pub fn typed(id: KernelId, dtype: DType) -> Self {
        KernelSymbol { id, dtype: Some(dtype), head_dim: None }
    }

    /// The C symbol NVRTC emits for this kernel.
    pub fn c_name(&self) -> String {
        let mut s = self.id.base_name().to_string();
        if let Some(d) = self.dtype {
            s.push('_');
            s.push_str(d.suffix());
        }
        if let Some(h) = self.head_dim {
            s.push_str(&format!("_d{h}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_is_named_in_its_module_source() {
        for id in KernelId::ALL {
            let src = id.module().source();
            for sym in id.symbols() {
                let name = sym.c_name();
                // Typed kernels are emitted by a macro `NAME(sfx, T)` that pastes `name_##sfx`.
                let found = src.contains(&format!(" {name}(")) || {
                    let base = id.base_name();
                    src.contains(&format!("{base}_##sfx")) || src.contains(&format!("{base}_##sfx##_d##DH"))
                };
                assert!(found, "{name} not found in {}", id.module().file_name());
            }
        }
    }

    #[test]
    fn attention_symbols_carry_type_and_head_dim() {
        let s = KernelSymbol { id: KernelId::AttentionDecode, dtype: Some(DType::Bf16), head_dim: Some(64) };
        assert_eq!(s.c_name(), "attention_decode_bf16_d64");
        assert_eq!(KernelId::AttentionPrefill.symbols().len(), 6);
        let mma: Vec<String> = KernelId::AttentionPrefillMma.symbols().iter().map(|s| s.c_name()).collect();
        assert_eq!(
            mma,
            ["attention_prefill_mma_bf16_d32", "attention_prefill_mma_bf16_d64", "attention_prefill_mma_bf16_d128"]
        );
        assert_eq!(KernelId::StressFma.symbols().len(), 1);
    }

    #[test]
    fn tensor_probe_is_built_only_for_hopper() {
        assert_eq!(CudaModule::TensorPeak.arch_for((9, 0)).as_deref(), Some("sm_90a"));
        assert_eq!(CudaModule::TensorPeak.arch_for((8, 0)), None);
        assert_eq!(CudaModule::Norm.arch_for((8, 6)).as_deref(), Some("sm_86"));
        assert_eq!(CudaModule::AttentionMma.arch_for((7, 5)), None);
        assert_eq!(CudaModule::AttentionMma.arch_for((8, 0)).as_deref(), Some("sm_80"));
    }
}
