//! Where two tenants' matrix products coincide: the GEMMs (and linear layers' GEMMs) of two
//! graphs that one grouped launch could run together, space-time's "super-kernel" (Jain et
//! al.): the same N, K and precision, any M. Two tenants in lockstep meet each shape as often
//! as the one with fewer of it holds it, so that is how many of each graph's products fuse.

use coloc_kernels::gpu::GemmPrecision;
use coloc_kernels::ops::{Op, OpSpec};
use serde::Serialize;

use crate::graph::ModelGraph;

/// What a grouped launch needs in common: the product's N, K and precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SharedShape {
    pub n: usize,
    pub k: usize,
    pub precision: GemmPrecision,
}

/// One graph's matrix product: its operator, rows (M), shape and arithmetic.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Product {
    m: usize,
    shape: SharedShape,
    flops: f64,
}

/// The matrix products of `g` that cuBLAS runs as plain GEMMs (GEMM operators and linear
/// layers; convolutions through cuDNN and attention kernels have no such shape).
fn products(g: &ModelGraph) -> Vec<Product> {
    g.ops
        .iter()
        .filter_map(|o| match &o.op {
            Op::Gemm(x) if x.batch == 1 => {
                Some((x.m, SharedShape { n: x.n, k: x.k, precision: x.precision }, o.op.cost().flops))
            }
            Op::Linear(x) => Some((
                x.rows,
                SharedShape { n: x.out_features, k: x.in_features, precision: x.precision },
                2.0 * (x.rows * x.in_features * x.out_features) as f64,
            )),
            _ => None,
        })
        .map(|(m, shape, flops)| Product { m, shape, flops })
        .collect()
}

/// A shape both graphs hold, how often each does, and their rows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SharedRow {
    pub shape: SharedShape,
    pub count_a: usize,
    pub count_b: usize,
    pub m_a: usize,
    pub m_b: usize,
}

/// Two graphs' products that fuse, as shares of each graph's arithmetic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fusable {
    pub shared: Vec<SharedRow>,
    /// Of each graph's FLOPs (every operator's): those in products that fuse with the other's.
    pub share_a: f64,
    pub share_b: f64,
    /// Products that fuse, of each graph's products.
    pub fused_a: usize,
    pub fused_b: usize,
    pub products_a: usize,
    pub products_b: usize,
}

/// What of `a` and `b` fuses when they run in lockstep.
pub fn fusable(a: &ModelGraph, b: &ModelGraph) -> Fusable {
    let (pa, pb) = (products(a), products(b));
    let mut shapes: Vec<SharedShape> =
        pa.iter().map(|p| p.shape).filter(|s| pb.iter().any(|q| q.shape == *s)).collect();
    shapes.sort();
    shapes.dedup();
    let mut shared = Vec::new();
    let (mut flops_a, mut flops_b, mut fused_a, mut fused_b) = (0.0, 0.0, 0, 0);
    for shape in shapes {
        let of_a: Vec<&Product> = pa.iter().filter(|p| p.shape == shape).collect();
        let of_b: Vec<&Product> = pb.iter().filter(|p| p.shape == shape).collect();
        let pairs = of_a.len().min(of_b.len());
        flops_a += of_a[..pairs].iter().map(|p| p.flops).sum::<f64>();
        flops_b += of_b[..pairs].iter().map(|p| p.flops).sum::<f64>();
        (fused_a, fused_b) = (fused_a + pairs, fused_b + pairs);
        shared.push(SharedRow { shape, count_a: of_a.len(), count_b: of_b.len(), m_a: of_a[0].m, m_b: of_b[0].m });
    }
    let total = |g: &ModelGraph| g.totals().flops;
    Fusable {
        shared,
        share_a: flops_a / total(a),
        share_b: flops_b / total(b),
        fused_a,
        fused_b,
        products_a: pa.len(),
        products_b: pb.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::BuildOptions;
    use crate::model::ModelSpec;

    fn graph(name: &str, batch: usize) -> ModelGraph {
        let (spec, _) = ModelSpec::resolve(name, std::path::Path::new(".")).unwrap();
        ModelGraph::build(&spec, &BuildOptions { batch, ..Default::default() }).unwrap()
    }

    #[test]
    fn bert_and_vit_share_every_encoder_product_and_cnns_share_only_a_classifier_at_most() {
        let (bert, vit) = (graph("bert_base", 1), graph("vit_b16", 1));
        let f = fusable(&bert, &vit);
        // qkv 768->2304, proj 768->768, fc1 768->3072, fc2 3072->768, twelve layers each
        let encoder: Vec<(usize, usize)> = vec![(768, 768), (768, 3072), (2304, 768), (3072, 768)];
        let shared: Vec<(usize, usize)> = f.shared.iter().map(|r| (r.shape.n, r.shape.k)).collect();
        for nk in &encoder {
            assert!(shared.contains(nk), "{nk:?} not shared: {shared:?}");
        }
        assert!(f.fused_a >= 48 && f.fused_b >= 48, "{f:?}");
        let fc1 = f.shared.iter().find(|r| (r.shape.n, r.shape.k) == (3072, 768)).unwrap();
        assert_eq!((fc1.count_a, fc1.count_b, fc1.m_a, fc1.m_b), (12, 12, 128, 197));
        assert!(f.share_a > 0.8 && f.share_a <= 1.0, "bert's arithmetic is mostly its encoder: {}", f.share_a);
        assert!(f.share_b > 0.8 && f.share_b <= 1.0, "{}", f.share_b);
        // the same model fuses all of its products with itself
        let same = fusable(&bert, &graph("bert_base", 1));
        assert_eq!((same.fused_a, same.products_a), (same.products_b, same.products_b));
        // a CNN's convolutions run through cuDNN: little or nothing fuses with a transformer
        let cnn = fusable(&graph("resnet50", 1), &bert);
        assert!(cnn.share_a < 0.05, "{cnn:?}");
    }
}
