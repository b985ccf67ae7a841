//! Shipped models expand into kernel-library operators whose totals match published figures,
//! and whose shapes follow batch size, sequence length and KV-cache length.

use std::path::Path;

use coloc_kernels::ops::OpSpec;
use coloc_workloads::graph::{BuildOptions, ModelGraph, TensorKind};
use coloc_workloads::model::{BUILTIN, ModelSpec};

fn spec(name: &str) -> ModelSpec {
    ModelSpec::resolve(name, Path::new(".")).unwrap().0
}

fn build(name: &str, batch: usize) -> ModelGraph {
    ModelGraph::build(&spec(name), &BuildOptions { batch, ..Default::default() }).unwrap_or_else(|e| panic!("{e}"))
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b
}

#[test]
fn every_shipped_model_expands_at_batch_1_and_8() {
    for (name, _) in BUILTIN {
        for batch in [1, 8] {
            let g = build(name, batch);
            assert!(!g.ops.is_empty(), "{name}");
            for op in &g.ops {
                op.op.validate().unwrap_or_else(|e| panic!("{name} {}: {e}", op.name));
            }
        }
    }
}

#[test]
fn parameter_counts_match_the_published_figures() {
    // Folding batch norm into a convolution bias keeps one of its two per-channel parameters,
    // so CNNs with batch norm land slightly below the published count; the rest are exact.
    let tolerance = [
        ("resnet50", 0.01),
        ("resnet18", 0.001),
        ("mobilenet_v2", 0.02),
        ("vgg16", 0.0),
        ("bert_base", 0.0),
        ("vit_b16", 0.0),
        ("gpt2_decode", 0.0),
    ];
    for (name, tol) in tolerance {
        let published = spec(name).published.unwrap().params as f64;
        let params = build(name, 1).totals().params as f64;
        assert!(rel(params, published) <= tol, "{name}: {params} parameters, published {published}");
    }
}

#[test]
fn resnet50_has_about_25_6_million_parameters_and_4_1_gmacs() {
    let t = build("resnet50", 1).totals();
    assert!((25.4e6..25.7e6).contains(&(t.params as f64)), "{}", t.params);
    assert!((4.0e9..4.2e9).contains(&t.macs), "{}", t.macs);
}

#[test]
fn multiply_accumulates_match_the_published_figures_within_5_percent() {
    for (name, _) in BUILTIN {
        let Some(macs) = spec(name).published.and_then(|p| p.macs) else { continue };
        let got = build(name, 1).totals().macs;
        assert!(rel(got, macs) < 0.05, "{name}: {got:.4e} MACs, published {macs:.4e}");
    }
}

#[test]
fn bert_base_has_about_110_million_parameters() {
    let p = build("bert_base", 1).totals().params as f64;
    assert!((109e6..111e6).contains(&p), "{p}");
}

#[test]
fn cost_follows_the_batch_size() {
    for name in ["resnet50", "vit_b16", "bert_base", "gpt2_decode"] {
        let (one, eight) = (build(name, 1).totals(), build(name, 8).totals());
        assert!(rel(eight.macs, 8.0 * one.macs) < 1e-9, "{name}");
        assert_eq!(one.params, eight.params, "{name}: parameters must not depend on the batch");
        assert!(eight.activation_bytes > 7 * one.activation_bytes, "{name}");
    }
}

#[test]
fn transformer_cost_follows_sequence_and_context_length() {
    let bert = spec("bert_base");
    let at = |seq| {
        ModelGraph::build(&bert, &BuildOptions { batch: 1, seq: Some(seq), context: None }).unwrap().totals().macs
    };
    // linear layers double with the sequence; attention products quadruple
    assert!(at(256) > 2.0 * at(128));
    let gpt = spec("gpt2_decode");
    let step =
        |context| ModelGraph::build(&gpt, &BuildOptions { batch: 1, seq: None, context: Some(context) }).unwrap();
    let (short, long) = (step(128), step(1000));
    // attention over the cache: 2 products x 12 layers x 768 x (context + 1) MACs
    let expected = 2.0 * 12.0 * 768.0 * (1001.0 - 129.0);
    assert!(rel(long.totals().macs - short.totals().macs, expected) < 1e-9);
    // the decode step appends at position `context` and attends over context + 1 tokens
    let decode = long.ops.iter().find(|o| o.op.kind() == "attention_decode").unwrap();
    assert!(decode.op.shape().contains("len=1001/1024"), "{}", decode.op.shape());
}

#[test]
fn tied_weights_are_counted_once() {
    let g = build("gpt2_decode", 1);
    let head = g.ops.iter().position(|o| o.name == "lm_head").unwrap();
    assert_eq!(g.params_per_op()[head], 0, "the LM head reuses the token embedding");
    let table = g.ops.iter().find(|o| o.name == "wte").unwrap().bindings.iter().find(|(n, _)| *n == "table").unwrap().1;
    assert!(g.ops[head].bindings.contains(&("w", table)));
}

#[test]
fn the_tiny_model_expands_layer_by_layer() {
    let g = build("tiny", 2);
    let names: Vec<&str> = g.ops.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "stem",
            "res.0.conv1",
            "res.0.conv2",
            "res.0.conv3",
            "res.0.downsample",
            "res.0.add",
            "mb.0.expand",
            "mb.0.depthwise",
            "mb.0.project",
            "mb.0.add",
            "max_pool3",
            "global_avg_pool4",
            "fc",
            "softmax6"
        ]
    );
    // 32x32 -> stem s2 -> 16x16 -> bottleneck s2 -> 8x8 -> pool -> 4x4 -> 32 channels -> 10 classes
    let out = &g.tensors[g.output];
    assert_eq!(out.shape, vec![2, 10]);
    let pool = g.ops.iter().find(|o| o.name == "max_pool3").unwrap();
    assert!(pool.op.shape().contains("n=2 8x8x32"), "{}", pool.op.shape());
}

#[test]
fn memory_totals_are_consistent() {
    for (name, _) in BUILTIN {
        let t = build(name, 4).totals();
        assert!(t.peak_activation_bytes <= t.activation_bytes + t.input_bytes, "{name}");
        assert!(t.peak_activation_bytes > 0 && t.weight_bytes > 0, "{name}");
    }
    let gpt = build("gpt2_decode", 2).totals();
    // two caches per layer of [batch, heads, max_context, head_dim] in bf16
    assert_eq!(gpt.state_bytes, 12 * 2 * (2 * 12 * 1024 * 64 * 2));
    assert!(build("vgg16", 1).tensors.iter().any(|t| t.kind == TensorKind::Scratch));
}

#[test]
fn shapes_the_model_cannot_take_are_rejected_with_the_reason() {
    let resnet = spec("resnet50");
    let err = ModelGraph::build(&resnet, &BuildOptions { batch: 300, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("batch 300") && err.contains("max_batch"), "{err}");
    let err =
        ModelGraph::build(&resnet, &BuildOptions { batch: 1, seq: Some(64), context: None }).unwrap_err().to_string();
    assert!(err.contains("no sequence"), "{err}");
    let bert = spec("bert_base");
    let err =
        ModelGraph::build(&bert, &BuildOptions { batch: 1, seq: Some(1000), context: None }).unwrap_err().to_string();
    assert!(err.contains("512 learned positions"), "{err}");
    let gpt = spec("gpt2_decode");
    assert!(ModelGraph::build(&gpt, &BuildOptions { batch: 1, seq: None, context: Some(1023) }).is_ok());
    let err =
        ModelGraph::build(&gpt, &BuildOptions { batch: 1, seq: None, context: Some(1024) }).unwrap_err().to_string();
    assert!(err.contains("exceed") && err.contains("1024"), "{err}");
}

#[test]
fn a_layer_in_the_wrong_place_is_explained() {
    let text = r#"
name = "broken"
dtype = "bf16"
input = { kind = "image", height = 8, width = 8, channels = 3 }
[[layer]]
type = "linear"
out = 10
"#;
    let m = ModelSpec::parse(text, Path::new("broken.toml")).unwrap();
    let err = ModelGraph::build(&m, &BuildOptions { batch: 1, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("global_avg_pool or flatten"), "{err}");
}

#[test]
fn resnet18_is_basic_blocks_with_11_7_million_parameters_and_1_8_gmacs() {
    let g = build("resnet18", 1);
    let t = g.totals();
    // torchvision: 11,689,512 parameters with batch norm; folded, each of the 4,800 batch-norm
    // channels keeps one bias instead of a scale and a shift
    assert_eq!(t.params, 11_689_512 - 4_800);
    assert!(rel(t.macs, 1.82e9) < 0.01, "{}", t.macs);
    // 8 basic blocks of two 3x3 convolutions, 3 of them with a 1x1 projection, and the stem
    let convs = g.ops.iter().filter(|o| o.op.kind() == "conv2d").count();
    assert_eq!(convs, 1 + 8 * 2 + 3);
    assert!(g.ops.iter().any(|o| o.name == "layer2.0.downsample"));
    assert!(!g.ops.iter().any(|o| o.name == "layer1.0.downsample"));
}

#[test]
fn flatten_after_global_average_pooling_is_accepted_as_in_pytorch() {
    let text = r#"
name = "pool_then_flatten"
dtype = "f32"
input = { kind = "image", height = 8, width = 8, channels = 4 }
max_batch = 4
[[layer]]
type = "global_avg_pool"
[[layer]]
type = "flatten"
[[layer]]
type = "linear"
out = 3
"#;
    let spec = ModelSpec::parse(text, std::path::Path::new("t.toml")).unwrap();
    let g = ModelGraph::build(&spec, &BuildOptions { batch: 2, ..Default::default() }).unwrap();
    assert_eq!(g.tensors[g.output].shape, vec![2, 3]);
    // flatten of token embeddings is still an error naming the layer
    let tokens = r#"
name = "t"
dtype = "f32"
input = { kind = "tokens", seq = 4 }
max_batch = 1
[[layer]]
type = "embedding"
name = "e"
vocab = 10
dim = 8
[[layer]]
type = "flatten"
"#;
    let spec = ModelSpec::parse(tokens, std::path::Path::new("t.toml")).unwrap();
    let err = ModelGraph::build(&spec, &BuildOptions { batch: 1, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("layer 1: flatten needs an image or a vector"), "{err}");
}
