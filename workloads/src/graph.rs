//! Expansion of a model's layers into kernel-library operators with real shapes, for one batch
//! size (and sequence or KV-cache length). The result is plain data: tensors (inputs, weights,
//! activations, KV-cache state, one shared scratch buffer) and operators bound to them, in
//! launch order. The harness allocates the tensors and replays the operators as a CUDA graph.

use std::collections::HashMap;

use coloc_kernels::gpu::GemmPrecision;
use coloc_kernels::ops::{
    AddAct, AttentionDecode, AttentionPrefill, Conv2d, ConvAlgo, DepthwiseConv2d, Embedding, GlobalAvgPool, Init,
    KvAppend, LayerNorm, Linear, Op, OpSpec, PatchTokens, Pool2d, PoolMode, Role, Softmax,
};
use coloc_kernels::{Activation, DType, ElemType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Layer, ModelInput, ModelSpec, NormPlacement, TokenSelect};

pub type TensorId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorKind {
    /// A request's data (image, token ids), filled from the input seed.
    Input,
    /// Model parameters.
    Weight,
    /// Produced by one operator, read by later ones.
    Activation,
    /// Persistent across requests (the KV cache).
    State,
    /// The one scratch buffer operators share (im2col columns), sized for the largest user.
    Scratch,
}

#[derive(Clone, Debug, Serialize)]
pub struct TensorDecl {
    pub name: String,
    pub kind: TensorKind,
    pub elem: ElemType,
    pub shape: Vec<usize>,
    pub init: Init,
    /// Elements that are model parameters (weights only).
    pub params: usize,
}

impl TensorDecl {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> usize {
        self.len() * self.elem.bytes()
    }
}

/// One operator of the graph with its operands bound to tensors.
#[derive(Clone, Debug, Serialize)]
pub struct GraphOp {
    /// Layer path, e.g. `layer3.2.conv2`.
    pub name: String,
    pub op: Op,
    pub bindings: Vec<(&'static str, TensorId)>,
}

/// Sizes that follow the request shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildOptions {
    pub batch: usize,
    /// Sequence length of a token model (default: the model's).
    pub seq: Option<usize>,
    /// Tokens already in the KV cache of a decode model (default: the model's).
    pub context: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelGraph {
    pub model: String,
    pub dtype: DType,
    pub batch: usize,
    pub seq: Option<usize>,
    pub context: Option<usize>,
    pub tensors: Vec<TensorDecl>,
    pub ops: Vec<GraphOp>,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
}

/// Totals of a graph, per request (the whole batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct GraphTotals {
    pub params: u64,
    pub flops: f64,
    pub macs: f64,
    pub dram_bytes: f64,
    pub weight_bytes: u64,
    pub input_bytes: u64,
    /// All activations, as allocated (one buffer each).
    pub activation_bytes: u64,
    /// The most activation bytes alive at once, from first write to last read.
    pub peak_activation_bytes: u64,
    pub state_bytes: u64,
    pub scratch_bytes: u64,
}

impl GraphTotals {
    /// Device memory the graph needs as coloc allocates it.
    pub fn allocated_bytes(&self) -> u64 {
        self.weight_bytes + self.input_bytes + self.activation_bytes + self.state_bytes + self.scratch_bytes
    }
}

impl ModelGraph {
    pub fn build(spec: &ModelSpec, opts: &BuildOptions) -> Result<ModelGraph> {
        Builder::new(spec, opts)?.run()
    }

    pub fn totals(&self) -> GraphTotals {
        let mut t = GraphTotals::default();
        for op in &self.ops {
            let c = op.op.cost();
            t.flops += c.flops;
            t.macs += c.macs;
            t.dram_bytes += c.dram_bytes;
        }
        for d in &self.tensors {
            let b = d.bytes() as u64;
            match d.kind {
                TensorKind::Weight => {
                    t.params += d.params as u64;
                    t.weight_bytes += b
                }
                TensorKind::Input => t.input_bytes += b,
                TensorKind::Activation => t.activation_bytes += b,
                TensorKind::State => t.state_bytes += b,
                TensorKind::Scratch => t.scratch_bytes += b,
            }
        }
        t.peak_activation_bytes = self.peak_activation_bytes();
        t
    }

    /// Liveness sweep over the launch order: a tensor lives from the operator that first
    /// touches it to the last one that reads it (inputs from the start).
    fn peak_activation_bytes(&self) -> u64 {
        let mut first = vec![usize::MAX; self.tensors.len()];
        let mut last = vec![0usize; self.tensors.len()];
        for (i, op) in self.ops.iter().enumerate() {
            for (_, t) in &op.bindings {
                first[*t] = first[*t].min(i);
                last[*t] = last[*t].max(i);
            }
        }
        let mut peak = 0u64;
        for i in 0..self.ops.len() {
            let live: u64 = self
                .tensors
                .iter()
                .enumerate()
                .filter(|(t, d)| {
                    matches!(d.kind, TensorKind::Activation | TensorKind::Input) && {
                        let start = if d.kind == TensorKind::Input { 0 } else { first[*t] };
                        start <= i && i <= last[*t]
                    }
                })
                .map(|(_, d)| d.bytes() as u64)
                .sum();
            peak = peak.max(live);
        }
        peak
    }

    /// Parameters created by each operator (weights it binds first), in launch order.
    pub fn params_per_op(&self) -> Vec<u64> {
        let mut seen = vec![false; self.tensors.len()];
        self.ops
            .iter()
            .map(|op| {
                op.bindings
                    .iter()
                    .filter(|(_, t)| {
                        self.tensors[*t].kind == TensorKind::Weight && !std::mem::replace(&mut seen[*t], true)
                    })
                    .map(|(_, t)| self.tensors[*t].params as u64)
                    .sum()
            })
            .collect()
    }
}

/// The shape of the activation flowing between layers.
#[derive(Clone, Copy, Debug)]
enum Flow {
    /// Token ids not yet embedded (start of a token or decode model).
    TokenIds {
        seq: usize,
    },
    Image {
        tensor: TensorId,
        h: usize,
        w: usize,
        c: usize,
    },
    Tokens {
        tensor: TensorId,
        seq: usize,
        dim: usize,
    },
    Vector {
        tensor: TensorId,
        dim: usize,
    },
}

struct Builder<'a> {
    spec: &'a ModelSpec,
    dtype: DType,
    precision: GemmPrecision,
    batch: usize,
    seq: Option<usize>,
    context: Option<usize>,
    tensors: Vec<TensorDecl>,
    ops: Vec<GraphOp>,
    inputs: Vec<TensorId>,
    scratch: Option<TensorId>,
    embeddings: HashMap<String, (TensorId, usize, usize)>,
    flow: Flow,
}

impl<'a> Builder<'a> {
    fn new(spec: &'a ModelSpec, opts: &BuildOptions) -> Result<Builder<'a>> {
        let ctx = format!("model {}", spec.name);
        if opts.batch == 0 || opts.batch > spec.max_batch {
            return Err(Error::invalid(
                ctx,
                format!("batch {} is outside 1..={} (the model's max_batch)", opts.batch, spec.max_batch),
            ));
        }
        let precision = match spec.dtype {
            DType::F32 => GemmPrecision::F32,
            DType::Bf16 => GemmPrecision::Bf16,
        };
        let mut b = Builder {
            spec,
            dtype: spec.dtype,
            precision,
            batch: opts.batch,
            seq: None,
            context: None,
            tensors: Vec::new(),
            ops: Vec::new(),
            inputs: Vec::new(),
            scratch: None,
            embeddings: HashMap::new(),
            flow: Flow::TokenIds { seq: 0 },
        };
        match spec.input {
            ModelInput::Image { height, width, channels } => {
                if opts.seq.is_some() || opts.context.is_some() {
                    return Err(Error::invalid(ctx, "an image model takes no sequence or context length"));
                }
                let t = b.tensor(
                    "input",
                    TensorKind::Input,
                    b.dtype.elem(),
                    vec![opts.batch, height, width, channels],
                    Init::Uniform { lo: -1.0, hi: 1.0 },
                );
                b.inputs.push(t);
                b.flow = Flow::Image { tensor: t, h: height, w: width, c: channels };
            }
            ModelInput::Tokens { seq } => {
                if opts.context.is_some() {
                    return Err(Error::invalid(ctx, "a token model takes a sequence length, not a context"));
                }
                let seq = opts.seq.unwrap_or(seq);
                if seq == 0 {
                    return Err(Error::invalid(ctx, "sequence length must be at least 1"));
                }
                b.seq = Some(seq);
                b.flow = Flow::TokenIds { seq };
            }
            ModelInput::Decode { context } => {
                if opts.seq.is_some() {
                    return Err(Error::invalid(ctx, "a decode model takes a context length, not a sequence"));
                }
                b.context = Some(opts.context.unwrap_or(context));
                b.flow = Flow::TokenIds { seq: 1 };
            }
        }
        Ok(b)
    }

    fn run(mut self) -> Result<ModelGraph> {
        for (i, layer) in self.spec.layers.iter().enumerate() {
            self.layer(i, layer)?;
        }
        let output = match self.flow {
            Flow::Image { tensor, .. } | Flow::Tokens { tensor, .. } | Flow::Vector { tensor, .. } => tensor,
            Flow::TokenIds { .. } => return Err(self.err("the model never embeds its tokens (add an embedding layer)")),
        };
        Ok(ModelGraph {
            model: self.spec.name.clone(),
            dtype: self.dtype,
            batch: self.batch,
            seq: self.seq,
            context: self.context,
            tensors: self.tensors,
            ops: self.ops,
            inputs: self.inputs,
            output,
        })
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::invalid(format!("model {}", self.spec.name), message)
    }

    fn tensor(&mut self, name: &str, kind: TensorKind, elem: ElemType, shape: Vec<usize>, init: Init) -> TensorId {
        let params = if kind == TensorKind::Weight { shape.iter().product() } else { 0 };
        self.tensors.push(TensorDecl { name: name.to_string(), kind, elem, shape, init, params });
        self.tensors.len() - 1
    }

    /// Adds `op`: operands in `given` are bound to those tensors; other weights get new weight
    /// tensors, other outputs new activations, workspaces the shared scratch. Every binding's
    /// size is checked against the operand's.
    fn emit(
        &mut self,
        name: &str,
        op: Op,
        given: &[(&'static str, TensorId)],
    ) -> Result<HashMap<&'static str, TensorId>> {
        op.validate().map_err(|e| self.err(format!("{name}: {e}")))?;
        let mut bound = HashMap::new();
        for operand in op.operands() {
            let id = if let Some((_, t)) = given.iter().find(|(n, _)| *n == operand.name) {
                *t
            } else {
                match operand.role {
                    Role::Weight => self.tensor(
                        &format!("{name}.{}", operand.name),
                        TensorKind::Weight,
                        operand.elem,
                        operand.shape.clone(),
                        operand.init,
                    ),
                    Role::Output => self.tensor(
                        &format!("{name}.{}", operand.name),
                        TensorKind::Activation,
                        operand.elem,
                        operand.shape.clone(),
                        Init::Poison,
                    ),
                    Role::Workspace => {
                        let s = *self.scratch.get_or_insert_with(|| {
                            self.tensors.push(TensorDecl {
                                name: "scratch".into(),
                                kind: TensorKind::Scratch,
                                elem: ElemType::U32,
                                shape: vec![0],
                                init: Init::Poison,
                                params: 0,
                            });
                            self.tensors.len() - 1
                        });
                        let words = operand.bytes().div_ceil(4);
                        self.tensors[s].shape[0] = self.tensors[s].shape[0].max(words);
                        s
                    }
                    Role::Input | Role::InOut => {
                        return Err(self.err(format!(
                            "{name}: operand `{}` of {} is not connected",
                            operand.name,
                            op.kind()
                        )));
                    }
                }
            };
            let t = &self.tensors[id];
            let fits =
                if t.kind == TensorKind::Scratch { t.bytes() >= operand.bytes() } else { t.bytes() == operand.bytes() };
            if !fits || (t.kind != TensorKind::Scratch && t.elem != operand.elem) {
                return Err(self.err(format!(
                    "{name}: operand `{}` of {} needs {:?} {:?} but is bound to `{}` {:?} {:?}",
                    operand.name,
                    op.kind(),
                    operand.elem,
                    operand.shape,
                    t.name,
                    t.elem,
                    t.shape
                )));
            }
            bound.insert(operand.name, id);
        }
        let bindings = op.operands().iter().map(|o| (o.name, bound[o.name])).collect();
        self.ops.push(GraphOp { name: name.to_string(), op, bindings });
        Ok(bound)
    }

    fn layer_name(i: usize, name: &Option<String>, kind: &str) -> String {
        name.clone().unwrap_or_else(|| format!("{kind}{i}"))
    }

    fn layer(&mut self, i: usize, layer: &Layer) -> Result<()> {
        match layer {
            Layer::Conv { name, out, kernel, stride, pad, act, bias } => {
                let n = Self::layer_name(i, name, "conv");
                self.conv(&n, *out, *kernel, *stride, pad.unwrap_or(kernel / 2), *act, *bias)
            }
            Layer::Depthwise { name, kernel, stride, pad, act } => {
                let n = Self::layer_name(i, name, "depthwise");
                self.depthwise(&n, *kernel, *stride, pad.unwrap_or(kernel / 2), *act)
            }
            Layer::MaxPool { name, kernel, stride, pad } => self.pool(
                &Self::layer_name(i, name, "max_pool"),
                *kernel,
                stride.unwrap_or(*kernel),
                *pad,
                PoolMode::Max,
            ),
            Layer::AvgPool { name, kernel, stride, pad } => self.pool(
                &Self::layer_name(i, name, "avg_pool"),
                *kernel,
                stride.unwrap_or(*kernel),
                *pad,
                PoolMode::Avg,
            ),
            Layer::GlobalAvgPool { name } => self.global_avg_pool(&Self::layer_name(i, name, "global_avg_pool")),
            Layer::Flatten {} => match self.flow {
                Flow::Image { tensor, h, w, c } => {
                    self.flow = Flow::Vector { tensor, dim: h * w * c };
                    Ok(())
                }
                Flow::Vector { .. } => Ok(()),
                _ => Err(self.err(format!("layer {i}: flatten needs an image or a vector"))),
            },
            Layer::BasicBlock { name, out, stride, repeat } => {
                let n = Self::layer_name(i, name, "basic_block");
                for r in 0..*repeat {
                    self.basic_block(&format!("{n}.{r}"), *out, if r == 0 { *stride } else { 1 })?;
                }
                Ok(())
            }
            Layer::Bottleneck { name, mid, out, stride, repeat } => {
                let n = Self::layer_name(i, name, "bottleneck");
                for r in 0..*repeat {
                    self.bottleneck(&format!("{n}.{r}"), *mid, *out, if r == 0 { *stride } else { 1 })?;
                }
                Ok(())
            }
            Layer::InvertedResidual { name, expand, out, stride, repeat } => {
                let n = Self::layer_name(i, name, "inverted_residual");
                for r in 0..*repeat {
                    self.inverted_residual(&format!("{n}.{r}"), *expand, *out, if r == 0 { *stride } else { 1 })?;
                }
                Ok(())
            }
            Layer::Linear { name, out, act, bias, tokens, tied } => {
                let n = Self::layer_name(i, name, "linear");
                self.linear_layer(&n, *out, *act, *bias, *tokens, tied.as_deref())
            }
            Layer::Softmax { name } => self.softmax(&Self::layer_name(i, name, "softmax")),
            Layer::Embedding { name, vocab, dim, positions, type_vocab } => {
                self.embedding(name, *vocab, *dim, *positions, *type_vocab)
            }
            Layer::LayerNorm { name, eps } => {
                let n = Self::layer_name(i, name, "layer_norm");
                let (x, rows, dim) = self.rows("layer_norm")?;
                let y = self.layer_norm(&n, x, rows, dim, *eps)?;
                self.set_rows(y, dim);
                Ok(())
            }
            Layer::PatchEmbed { name, patch, dim } => {
                self.patch_embed(&Self::layer_name(i, name, "patch_embed"), *patch, *dim)
            }
            Layer::Encoder { name, heads, ffn, act, norm, eps, repeat } => {
                let n = Self::layer_name(i, name, "encoder");
                for r in 0..*repeat {
                    self.encoder_block(&format!("{n}.{r}"), *heads, *ffn, *act, *norm, *eps)?;
                }
                Ok(())
            }
            Layer::Decoder { name, heads, ffn, act, eps, repeat, max_context } => {
                let n = Self::layer_name(i, name, "decoder");
                for r in 0..*repeat {
                    self.decoder_block(&format!("{n}.{r}"), *heads, *ffn, *act, *eps, *max_context)?;
                }
                Ok(())
            }
        }
    }

    fn image(&self, what: &str) -> Result<(TensorId, usize, usize, usize)> {
        match self.flow {
            Flow::Image { tensor, h, w, c } => Ok((tensor, h, w, c)),
            _ => Err(self.err(format!("{what} needs an image input at this point"))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        out: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        act: Activation,
        bias: bool,
    ) -> Result<()> {
        let (x, h, w, c) = self.image(name)?;
        self.conv_on(name, x, (h, w, c), out, kernel, stride, pad, act, bias)
    }

    /// A convolution of tensor `x` (shape `hwc`); sets the flow to its output.
    #[allow(clippy::too_many_arguments)]
    fn conv_on(
        &mut self,
        name: &str,
        x: TensorId,
        hwc: (usize, usize, usize),
        out: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        act: Activation,
        bias: bool,
    ) -> Result<()> {
        let op = Conv2d {
            batch: self.batch,
            height: hwc.0,
            width: hwc.1,
            in_ch: hwc.2,
            out_ch: out,
            kernel: (kernel, kernel),
            stride,
            pad,
            act,
            bias,
            precision: self.precision,
            algo: ConvAlgo::Auto,
        };
        let (oh, ow) = op.out_hw().map_err(|e| self.err(format!("{name}: {e}")))?;
        self.emit_spatial(name, Op::Conv2d(op), x, (oh, ow, out))
    }

    fn depthwise(&mut self, name: &str, kernel: usize, stride: usize, pad: usize, act: Activation) -> Result<()> {
        let (x, h, w, c) = self.image(name)?;
        let op = DepthwiseConv2d {
            batch: self.batch,
            height: h,
            width: w,
            channels: c,
            kernel: (kernel, kernel),
            stride,
            pad,
            act,
            dtype: self.dtype,
        };
        let (oh, ow) = op.out_hw().map_err(|e| self.err(format!("{name}: {e}")))?;
        self.emit_spatial(name, Op::DepthwiseConv2d(op), x, (oh, ow, c))
    }

    fn pool(&mut self, name: &str, kernel: usize, stride: usize, pad: usize, mode: PoolMode) -> Result<()> {
        let (x, h, w, c) = self.image(name)?;
        let op = Pool2d {
            batch: self.batch,
            height: h,
            width: w,
            channels: c,
            kernel: (kernel, kernel),
            stride,
            pad,
            mode,
            dtype: self.dtype,
        };
        let (oh, ow) = op.out_hw().map_err(|e| self.err(format!("{name}: {e}")))?;
        self.emit_spatial(name, Op::Pool2d(op), x, (oh, ow, c))
    }

    /// Emits an image-to-image operator reading `x` and makes its output `y` the flow.
    fn emit_spatial(&mut self, name: &str, op: Op, x: TensorId, (h, w, c): (usize, usize, usize)) -> Result<()> {
        let y = self.emit(name, op, &[("x", x)])?["y"];
        self.flow = Flow::Image { tensor: y, h, w, c };
        Ok(())
    }

    fn global_avg_pool(&mut self, name: &str) -> Result<()> {
        let (x, h, w, c) = self.image(name)?;
        let op = GlobalAvgPool { batch: self.batch, height: h, width: w, channels: c, dtype: self.dtype };
        let b = self.emit(name, Op::GlobalAvgPool(op), &[("x", x)])?;
        self.flow = Flow::Vector { tensor: b["y"], dim: c };
        Ok(())
    }

    fn add(&mut self, name: &str, a: TensorId, b: TensorId, act: Activation) -> Result<TensorId> {
        let elements = self.tensors[a].len();
        let op = AddAct { elements, act, dtype: self.dtype };
        Ok(self.emit(name, Op::AddAct(op), &[("a", a), ("b", b)])?["y"])
    }

    fn bottleneck(&mut self, name: &str, mid: usize, out: usize, stride: usize) -> Result<()> {
        let (x, h, w, c) = self.image(name)?;
        self.conv(&format!("{name}.conv1"), mid, 1, 1, 0, Activation::Relu, true)?;
        self.conv(&format!("{name}.conv2"), mid, 3, stride, 1, Activation::Relu, true)?;
        self.conv(&format!("{name}.conv3"), out, 1, 1, 0, Activation::None, true)?;
        self.residual_join(name, (x, h, w, c), out, stride)
    }

    /// Ends a ResNet block whose main path has just been emitted: adds the block's input `x`
    /// (projected by a strided 1x1 where the shape changed) and applies ReLU.
    fn residual_join(
        &mut self,
        name: &str,
        (x, h, w, c): (TensorId, usize, usize, usize),
        out: usize,
        stride: usize,
    ) -> Result<()> {
        let (main, oh, ow, _) = self.image(name)?;
        let shortcut = if stride != 1 || c != out {
            self.conv_on(&format!("{name}.downsample"), x, (h, w, c), out, 1, stride, 0, Activation::None, true)?;
            self.image(name)?.0
        } else {
            x
        };
        let y = self.add(&format!("{name}.add"), main, shortcut, Activation::Relu)?;
        self.flow = Flow::Image { tensor: y, h: oh, w: ow, c: out };
        Ok(())
    }

    fn basic_block(&mut self, name: &str, out: usize, stride: usize) -> Result<()> {
        let (x, h, w, c) = self.image(name)?;
        self.conv(&format!("{name}.conv1"), out, 3, stride, 1, Activation::Relu, true)?;
        self.conv(&format!("{name}.conv2"), out, 3, 1, 1, Activation::None, true)?;
        self.residual_join(name, (x, h, w, c), out, stride)
    }

    fn inverted_residual(&mut self, name: &str, expand: usize, out: usize, stride: usize) -> Result<()> {
        let (x, _, _, c) = self.image(name)?;
        if expand != 1 {
            self.conv(&format!("{name}.expand"), c * expand, 1, 1, 0, Activation::Relu6, true)?;
        }
        self.depthwise(&format!("{name}.depthwise"), 3, stride, 1, Activation::Relu6)?;
        self.conv(&format!("{name}.project"), out, 1, 1, 0, Activation::None, true)?;
        if stride == 1 && c == out {
            let (y, oh, ow, _) = self.image(name)?;
            let sum = self.add(&format!("{name}.add"), y, x, Activation::None)?;
            self.flow = Flow::Image { tensor: sum, h: oh, w: ow, c: out };
        }
        Ok(())
    }

    /// The flowing tensor as rows: (tensor, rows, width).
    fn rows(&self, what: &str) -> Result<(TensorId, usize, usize)> {
        match self.flow {
            Flow::Tokens { tensor, seq, dim } => Ok((tensor, self.batch * seq, dim)),
            Flow::Vector { tensor, dim } => Ok((tensor, self.batch, dim)),
            Flow::Image { .. } => {
                Err(self.err(format!("{what} needs tokens or a vector; add global_avg_pool or flatten first")))
            }
            Flow::TokenIds { .. } => {
                Err(self.err(format!("{what} needs embedded tokens; add an embedding layer first")))
            }
        }
    }

    /// Replaces the flowing tensor, keeping its kind (tokens or vector).
    fn set_rows(&mut self, tensor: TensorId, dim: usize) {
        self.flow = match self.flow {
            Flow::Tokens { seq, .. } => Flow::Tokens { tensor, seq, dim },
            _ => Flow::Vector { tensor, dim },
        };
    }

    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        name: &str,
        x: TensorId,
        rows: usize,
        in_features: usize,
        row_stride: usize,
        out: usize,
        act: Activation,
        bias: bool,
        weight: Option<TensorId>,
    ) -> Result<TensorId> {
        let op = Linear { rows, in_features, out_features: out, row_stride, act, bias, precision: self.precision };
        let mut given = vec![("x", x)];
        if let Some(w) = weight {
            given.push(("w", w));
        }
        Ok(self.emit(name, Op::Linear(op), &given)?["y"])
    }

    fn linear_layer(
        &mut self,
        name: &str,
        out: usize,
        act: Activation,
        bias: bool,
        tokens: TokenSelect,
        tied: Option<&str>,
    ) -> Result<()> {
        let weight = match tied {
            None => None,
            Some(t) => {
                let Some(&(table, vocab, dim)) = self.embeddings.get(t) else {
                    let known: Vec<&str> = self.embeddings.keys().map(|s| s.as_str()).collect();
                    return Err(Error::unknown("embedding layer", t, known));
                };
                let (_, _, width) = self.rows(name)?;
                if vocab != out || dim != width {
                    return Err(self.err(format!("{name}: tied to `{t}` ({vocab} x {dim}) but maps {width} to {out}")));
                }
                Some(table)
            }
        };
        match (tokens, self.flow) {
            (TokenSelect::First, Flow::Tokens { tensor, seq, dim }) => {
                let y = self.linear(name, tensor, self.batch, dim, seq * dim, out, act, bias, weight)?;
                self.flow = Flow::Vector { tensor: y, dim: out };
            }
            (TokenSelect::First, _) => {
                return Err(self.err(format!("{name}: tokens = \"first\" needs a token sequence")));
            }
            (TokenSelect::All, _) => {
                let (x, rows, dim) = self.rows(name)?;
                let y = self.linear(name, x, rows, dim, 0, out, act, bias, weight)?;
                self.set_rows(y, out);
            }
        }
        Ok(())
    }

    fn softmax(&mut self, name: &str) -> Result<()> {
        let (x, rows, dim) = self.rows(name)?;
        let op = Softmax { rows, len: dim, scale: 1.0, dtype: self.dtype };
        let y = self.emit(name, Op::Softmax(op), &[("x", x)])?["y"];
        self.set_rows(y, dim);
        Ok(())
    }

    fn layer_norm(&mut self, name: &str, x: TensorId, rows: usize, dim: usize, eps: f32) -> Result<TensorId> {
        let op = LayerNorm { rows, dim, eps, dtype: self.dtype };
        Ok(self.emit(name, Op::LayerNorm(op), &[("x", x)])?["y"])
    }

    fn embedding(&mut self, name: &str, vocab: usize, dim: usize, positions: usize, type_vocab: usize) -> Result<()> {
        let Flow::TokenIds { seq } = self.flow else {
            return Err(self.err(format!("{name}: an embedding must come first in a token model")));
        };
        let rows = self.batch * seq;
        let pos_offset = self.context.unwrap_or(0);
        if positions > 0 && pos_offset + seq > positions {
            return Err(self.err(format!(
                "{name}: tokens {}..{} exceed the {positions} learned positions",
                pos_offset,
                pos_offset + seq
            )));
        }
        let ids = self.tensor(
            &format!("{name}.ids"),
            TensorKind::Input,
            ElemType::I32,
            vec![rows],
            Init::Ids { vocab: vocab as u32 },
        );
        self.inputs.push(ids);
        let op = Embedding { rows, dim, vocab, seq, max_positions: positions, pos_offset, dtype: self.dtype };
        let b = self.emit(name, Op::Embedding(op), &[("ids", ids)])?;
        self.embeddings.insert(name.to_string(), (b["table"], vocab, dim));
        let mut x = b["out"];
        if type_vocab > 0 {
            let types = self.tensor(
                &format!("{name}.type_ids"),
                TensorKind::Input,
                ElemType::I32,
                vec![rows],
                Init::Ids { vocab: type_vocab as u32 },
            );
            self.inputs.push(types);
            let op =
                Embedding { rows, dim, vocab: type_vocab, seq, max_positions: 0, pos_offset: 0, dtype: self.dtype };
            let t = self.emit(&format!("{name}.types"), Op::Embedding(op), &[("ids", types)])?["out"];
            x = self.add(&format!("{name}.add_types"), x, t, Activation::None)?;
        }
        self.flow = Flow::Tokens { tensor: x, seq, dim };
        Ok(())
    }

    fn patch_embed(&mut self, name: &str, patch: usize, dim: usize) -> Result<()> {
        let (_, h, w, _) = self.image(name)?;
        if patch == 0 || h % patch != 0 || w % patch != 0 {
            return Err(self.err(format!("{name}: a {h}x{w} image does not divide into {patch}x{patch} patches")));
        }
        self.conv(&format!("{name}.proj"), dim, patch, patch, 0, Activation::None, true)?;
        let (patches, ph, pw, _) = self.image(name)?;
        let op = PatchTokens { batch: self.batch, patches: ph * pw, dim, dtype: self.dtype };
        let out = self.emit(&format!("{name}.tokens"), Op::PatchTokens(op), &[("patches", patches)])?["out"];
        self.seq = Some(ph * pw + 1);
        self.flow = Flow::Tokens { tensor: out, seq: ph * pw + 1, dim };
        Ok(())
    }

    fn head_dim(&self, name: &str, dim: usize, heads: usize) -> Result<usize> {
        if heads == 0 || dim % heads != 0 {
            return Err(self.err(format!("{name}: width {dim} does not divide into {heads} heads")));
        }
        Ok(dim / heads)
    }

    fn encoder_block(
        &mut self,
        name: &str,
        heads: usize,
        ffn: usize,
        act: Activation,
        norm: NormPlacement,
        eps: f32,
    ) -> Result<()> {
        let Flow::Tokens { tensor: x, seq, dim } = self.flow else {
            return Err(self.err(format!("{name}: an encoder needs embedded tokens")));
        };
        let head_dim = self.head_dim(name, dim, heads)?;
        let rows = self.batch * seq;
        let attn_in =
            if norm == NormPlacement::Pre { self.layer_norm(&format!("{name}.norm1"), x, rows, dim, eps)? } else { x };
        let qkv = self.linear(&format!("{name}.qkv"), attn_in, rows, dim, 0, 3 * dim, Activation::None, true, None)?;
        let op = AttentionPrefill { batch: self.batch, seq, heads, head_dim, causal: false, dtype: self.dtype };
        let att = self.emit(&format!("{name}.attention"), Op::AttentionPrefill(op), &[("qkv", qkv)])?["out"];
        let proj = self.linear(&format!("{name}.proj"), att, rows, dim, 0, dim, Activation::None, true, None)?;
        let mut h = self.add(&format!("{name}.add1"), x, proj, Activation::None)?;
        let mlp_in = match norm {
            NormPlacement::Pre => self.layer_norm(&format!("{name}.norm2"), h, rows, dim, eps)?,
            NormPlacement::Post => {
                h = self.layer_norm(&format!("{name}.norm1"), h, rows, dim, eps)?;
                h
            }
        };
        let up = self.linear(&format!("{name}.fc1"), mlp_in, rows, dim, 0, ffn, act, true, None)?;
        let down = self.linear(&format!("{name}.fc2"), up, rows, ffn, 0, dim, Activation::None, true, None)?;
        let mut y = self.add(&format!("{name}.add2"), h, down, Activation::None)?;
        if norm == NormPlacement::Post {
            y = self.layer_norm(&format!("{name}.norm2"), y, rows, dim, eps)?;
        }
        self.flow = Flow::Tokens { tensor: y, seq, dim };
        Ok(())
    }

    fn decoder_block(
        &mut self,
        name: &str,
        heads: usize,
        ffn: usize,
        act: Activation,
        eps: f32,
        max_context: usize,
    ) -> Result<()> {
        let Flow::Tokens { tensor: x, seq: 1, dim } = self.flow else {
            return Err(self.err(format!("{name}: a decoder needs one embedded token per sequence (a decode input)")));
        };
        let Some(context) = self.context else {
            return Err(self.err(format!("{name}: a decoder needs a decode input with a context length")));
        };
        if context + 1 > max_context {
            return Err(
                self.err(format!("{name}: context {context} plus the new token exceeds max_context {max_context}"))
            );
        }
        let head_dim = self.head_dim(name, dim, heads)?;
        let b = self.batch;
        let h1 = self.layer_norm(&format!("{name}.norm1"), x, b, dim, eps)?;
        let qkv = self.linear(&format!("{name}.qkv"), h1, b, dim, 0, 3 * dim, Activation::None, true, None)?;
        let cache_shape = vec![b, heads, max_context, head_dim];
        let init = Init::Uniform { lo: -1.0, hi: 1.0 };
        let k =
            self.tensor(&format!("{name}.k_cache"), TensorKind::State, self.dtype.elem(), cache_shape.clone(), init);
        let v = self.tensor(&format!("{name}.v_cache"), TensorKind::State, self.dtype.elem(), cache_shape, init);
        let append = KvAppend { batch: b, heads, head_dim, max_len: max_context, pos: context, dtype: self.dtype };
        self.emit(&format!("{name}.kv_append"), Op::KvAppend(append), &[("qkv", qkv), ("k_cache", k), ("v_cache", v)])?;
        let op =
            AttentionDecode { batch: b, heads, head_dim, max_len: max_context, len: context + 1, dtype: self.dtype };
        let att = self.emit(
            &format!("{name}.attention"),
            Op::AttentionDecode(op),
            &[("qkv", qkv), ("k_cache", k), ("v_cache", v)],
        )?["out"];
        let proj = self.linear(&format!("{name}.proj"), att, b, dim, 0, dim, Activation::None, true, None)?;
        let h = self.add(&format!("{name}.add1"), x, proj, Activation::None)?;
        let h2 = self.layer_norm(&format!("{name}.norm2"), h, b, dim, eps)?;
        let up = self.linear(&format!("{name}.fc1"), h2, b, dim, 0, ffn, act, true, None)?;
        let down = self.linear(&format!("{name}.fc2"), up, b, ffn, 0, dim, Activation::None, true, None)?;
        let y = self.add(&format!("{name}.add2"), h, down, Activation::None)?;
        self.flow = Flow::Tokens { tensor: y, seq: 1, dim };
        Ok(())
    }
}
