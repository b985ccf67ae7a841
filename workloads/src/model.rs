//! Models as data: a TOML file names the model's input and its layers; [`crate::graph`]
//! expands the layers into kernel-library operators with real shapes for a batch size (and a
//! sequence or KV-cache length). The shipped models are embedded in the binary; any other
//! file can be named by path.

use std::path::{Path, PathBuf};

use coloc_kernels::{Activation, DType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, from_toml};

/// A model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Storage type of weights and activations (arithmetic is f32 inside kernels).
    pub dtype: DType,
    pub input: ModelInput,
    /// The largest batch the model accepts.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Published totals the expansion is tested against.
    pub published: Option<Published>,
    #[serde(rename = "layer")]
    pub layers: Vec<Layer>,
}

fn default_max_batch() -> usize {
    256
}

/// What one request carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelInput {
    /// An NHWC image.
    Image { height: usize, width: usize, channels: usize },
    /// A sequence of token ids (an encoder); `seq` is the default length.
    Tokens { seq: usize },
    /// One new token per sequence, after `context` tokens already in the KV cache (a decode step).
    Decode { context: usize },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    pub params: u64,
    /// Multiply-accumulates per sample at the default input size, where published.
    pub macs: Option<f64>,
    pub source: String,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_eps() -> f32 {
    1e-5
}
fn gelu() -> Activation {
    Activation::Gelu
}
fn gelu_tanh() -> Activation {
    Activation::GeluTanh
}

/// Where a linear layer reads its input rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSelect {
    /// Every row (every token).
    #[default]
    All,
    /// The first token of each sequence (a pooler, a class-token head).
    First,
}

/// Layer norm before (pre, ViT/GPT-2) or after (post, BERT) each residual block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormPlacement {
    Pre,
    Post,
}

/// One layer (or a repeated block of layers). `name` prefixes the names of its operators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// 2-D convolution; `pad` defaults to kernel / 2 ("same" for odd kernels at stride 1).
    Conv {
        name: Option<String>,
        out: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        pad: Option<usize>,
        #[serde(default)]
        act: Activation,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// Depthwise convolution with bias and activation.
    Depthwise {
        name: Option<String>,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        pad: Option<usize>,
        #[serde(default)]
        act: Activation,
    },
    MaxPool {
        name: Option<String>,
        kernel: usize,
        stride: Option<usize>,
        #[serde(default)]
        pad: usize,
    },
    AvgPool {
        name: Option<String>,
        kernel: usize,
        stride: Option<usize>,
        #[serde(default)]
        pad: usize,
    },
    GlobalAvgPool {
        name: Option<String>,
    },
    /// View an image as a vector (NHWC order); no kernel. After a layer that already gives a
    /// vector (`global_avg_pool`), it changes nothing, as in PyTorch.
    Flatten {},
    /// ResNet-18/34 basic block: 3x3 (out, stride) -> 3x3 (out), ReLU, residual with a 1x1
    /// projection when the shape changes; `repeat` blocks, the first with `stride`.
    BasicBlock {
        name: Option<String>,
        out: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default = "one")]
        repeat: usize,
    },
    /// ResNet v1.5 bottleneck: 1x1 (mid) -> 3x3 (mid, stride) -> 1x1 (out), ReLU, residual
    /// with a 1x1 projection when the shape changes; `repeat` blocks, the first with `stride`.
    Bottleneck {
        name: Option<String>,
        mid: usize,
        out: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default = "one")]
        repeat: usize,
    },
    /// MobileNetV2 inverted residual: 1x1 expand (x`expand`, ReLU6) -> 3x3 depthwise (stride,
    /// ReLU6) -> 1x1 project (linear), residual when shapes match; `repeat` blocks.
    InvertedResidual {
        name: Option<String>,
        expand: usize,
        out: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default = "one")]
        repeat: usize,
    },
    /// Fully connected layer. `tied` names an embedding layer whose table is the weight.
    Linear {
        name: Option<String>,
        out: usize,
        #[serde(default)]
        act: Activation,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default)]
        tokens: TokenSelect,
        tied: Option<String>,
    },
    Softmax {
        name: Option<String>,
    },
    /// Token embedding (+ learned positions, + token types when `type_vocab` > 0).
    Embedding {
        name: String,
        vocab: usize,
        dim: usize,
        #[serde(default)]
        positions: usize,
        #[serde(default)]
        type_vocab: usize,
    },
    LayerNorm {
        name: Option<String>,
        #[serde(default = "default_eps")]
        eps: f32,
    },
    /// ViT patch embedding: a `patch` x `patch` convolution of stride `patch` to `dim`
    /// channels, then the class token and learned positions.
    PatchEmbed {
        name: Option<String>,
        patch: usize,
        dim: usize,
    },
    /// Transformer encoder blocks: self-attention (`heads`), MLP (`ffn`, `act`), residuals.
    Encoder {
        name: Option<String>,
        heads: usize,
        ffn: usize,
        #[serde(default = "gelu")]
        act: Activation,
        norm: NormPlacement,
        #[serde(default = "default_eps")]
        eps: f32,
        #[serde(default = "one")]
        repeat: usize,
    },
    /// Pre-norm causal decoder blocks for one decode step over a KV cache of `max_context`.
    Decoder {
        name: Option<String>,
        heads: usize,
        ffn: usize,
        #[serde(default = "gelu_tanh")]
        act: Activation,
        #[serde(default = "default_eps")]
        eps: f32,
        #[serde(default = "one")]
        repeat: usize,
        max_context: usize,
    },
}

/// The models shipped with coloc: (name, TOML text).
pub const BUILTIN: [(&str, &str); 8] = [
    ("resnet50", include_str!("../models/resnet50.toml")),
    ("resnet18", include_str!("../models/resnet18.toml")),
    ("mobilenet_v2", include_str!("../models/mobilenet_v2.toml")),
    ("vgg16", include_str!("../models/vgg16.toml")),
    ("bert_base", include_str!("../models/bert_base.toml")),
    ("vit_b16", include_str!("../models/vit_b16.toml")),
    ("gpt2_decode", include_str!("../models/gpt2_decode.toml")),
    ("tiny", include_str!("../models/tiny.toml")),
];

impl ModelSpec {
    /// Parses model TOML; `path` names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<ModelSpec> {
        let spec: ModelSpec = toml::from_str(text).map_err(|e| from_toml(path, text, &e))?;
        if spec.layers.is_empty() {
            return Err(Error::invalid(path.display().to_string(), "a model needs at least one [[layer]]"));
        }
        if spec.max_batch == 0 {
            return Err(Error::invalid(path.display().to_string(), "max_batch must be at least 1"));
        }
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<ModelSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        ModelSpec::parse(&text, path)
    }

    /// A shipped model by name, or a model file by path (anything ending in `.toml` or
    /// containing a `/`). An unknown name gets the nearest shipped names.
    pub fn resolve(name_or_path: &str, base_dir: &Path) -> Result<(ModelSpec, ModelSource)> {
        if name_or_path.ends_with(".toml") || name_or_path.contains('/') {
            let path = base_dir.join(name_or_path);
            return Ok((ModelSpec::load(&path)?, ModelSource::File(path)));
        }
        match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, text)) => {
                Ok((ModelSpec::parse(text, Path::new(&format!("<builtin>/{n}.toml")))?, ModelSource::Builtin))
            }
            None => Err(Error::unknown("model", name_or_path, BUILTIN.iter().map(|(n, _)| *n))),
        }
    }
}

/// Where a model came from (for manifests).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    Builtin,
    File(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_model_parses_and_is_named_as_registered() {
        for (name, text) in BUILTIN {
            let spec = ModelSpec::parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(spec.name, name);
        }
    }

    #[test]
    fn an_unknown_model_name_suggests_the_nearest() {
        let err = ModelSpec::resolve("resnet5", Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("unknown model `resnet5`") && err.contains("resnet50"), "{err}");
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let text = "name = \"m\"\ndtype = \"bf16\"\ninput = { kind = \"image\", height = 2, width = 2, channels = 3 \n";
        let err = ModelSpec::parse(text, Path::new("bad.toml")).unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:3:"), "{err}");
    }

    #[test]
    fn an_unknown_field_or_layer_type_is_named_with_the_valid_ones() {
        let base =
            "name = \"m\"\ndtype = \"bf16\"\ninput = { kind = \"image\", height = 8, width = 8, channels = 3 }\n";
        let bad_field = format!("{base}[[layer]]\ntype = \"conv\"\nout = 4\nkernal = 3\n");
        let err = ModelSpec::parse(&bad_field, Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.starts_with("m.toml:4:") || err.starts_with("m.toml:5:"), "{err}");
        assert!(err.contains("kernal") && err.contains("kernel"), "{err}");
        let bad_type = format!("{base}[[layer]]\ntype = \"convolution\"\nout = 4\n");
        let err = ModelSpec::parse(&bad_type, Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.contains("convolution") && err.contains("conv"), "{err}");
    }
}
