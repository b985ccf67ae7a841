//! Where two tenants' matrix products coincide: the GEMMs (and linear layers' GEMMs) of two
//! graphs that one grouped launch could run together, space-time's "super-kernel" (Jain et
//! al.): the same N, K and precision, any M. Two tenants in lockstep meet their products in
//! graph order, so what fuses is the longest common subsequence of their shapes. An upper
//! bound on what a runtime gets: the two must be at those products at the same time, and a
//! grouped launch has no epilogue (a linear layer's bias and activation, fused into its GEMM by
//! cuBLASLt alone, run as kernels of their own).

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

/// A shape both graphs' fused products have: how many pairs, and the rows (M) of each side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SharedRow {
    pub shape: SharedShape,
    pub pairs: usize,
    /// Distinct rows of the fused products, ascending.
    pub m_a: Vec<usize>,
    pub m_b: Vec<usize>,
}

/// Two graphs' products that fuse, as shares of each graph's arithmetic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fusable {
    pub shared: Vec<SharedRow>,
    /// Of each graph's FLOPs (every operator's): those in products that fuse with the other's.
    pub share_a: f64,
    pub share_b: f64,
    /// Products that fuse (as many on each side), and each graph's products.
    pub fused: usize,
    pub products_a: usize,
    pub products_b: usize,
}

/// The longest common subsequence of the two sequences of shapes, as index pairs.
fn in_lockstep(pa: &[Product], pb: &[Product]) -> Vec<(usize, usize)> {
    let (n, m) = (pa.len(), pb.len());
    let mut longest = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            longest[i][j] = if pa[i].shape == pb[j].shape {
                1 + longest[i + 1][j + 1]
            } else {
                longest[i + 1][j].max(longest[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut pairs) = (0, 0, Vec::new());
    while i < n && j < m {
        if pa[i].shape == pb[j].shape {
            pairs.push((i, j));
            (i, j) = (i + 1, j + 1);
        } else if longest[i + 1][j] >= longest[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// What of `a` and `b` fuses when they run in lockstep.
pub fn fusable(a: &ModelGraph, b: &ModelGraph) -> Fusable {
    let (pa, pb) = (products(a), products(b));
    let pairs = in_lockstep(&pa, &pb);
    let mut shared: Vec<SharedRow> = Vec::new();
    for &(i, j) in &pairs {
        let shape = pa[i].shape;
        let row = match shared.iter().position(|r| r.shape == shape) {
            Some(r) => &mut shared[r],
            None => {
                shared.push(SharedRow { shape, pairs: 0, m_a: Vec::new(), m_b: Vec::new() });
                shared.last_mut().expect("pushed")
            }
        };
        row.pairs += 1;
        row.m_a.push(pa[i].m);
        row.m_b.push(pb[j].m);
    }
    for r in &mut shared {
        r.m_a.sort_unstable();
        r.m_a.dedup();
        r.m_b.sort_unstable();
        r.m_b.dedup();
    }
    shared.sort_by_key(|r| r.shape);
    let flops_a: f64 = pairs.iter().map(|&(i, _)| pa[i].flops).sum();
    let flops_b: f64 = pairs.iter().map(|&(_, j)| pb[j].flops).sum();
    Fusable {
        shared,
        share_a: flops_a / a.totals().flops,
        share_b: flops_b / b.totals().flops,
        fused: pairs.len(),
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

    fn product(n: usize, k: usize) -> Product {
        Product { m: 8, shape: SharedShape { n, k, precision: GemmPrecision::Bf16 }, flops: 1.0 }
    }

    #[test]
    fn products_fuse_in_order_not_by_count() {
        // a: X Y X, b: Y X Y: two in lockstep (Y X or X Y), not min counts (1 + 2 = 3)
        let (x, y) = (product(1, 2), product(3, 4));
        let pairs = in_lockstep(&[x, y, x], &[y, x, y]);
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "in order: {pairs:?}");
        assert!(in_lockstep(&[x, x], &[y]).is_empty());
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
        assert_eq!(f.fused, 48, "{f:?}");
        let fc1 = f.shared.iter().find(|r| (r.shape.n, r.shape.k) == (3072, 768)).unwrap();
        assert_eq!((fc1.pairs, fc1.m_a.clone(), fc1.m_b.clone()), (12, vec![128], vec![197]));
        assert!(f.share_a > 0.8 && f.share_a <= 1.0, "bert's arithmetic is mostly its encoder: {}", f.share_a);
        assert!(f.share_b > 0.8 && f.share_b <= 1.0, "{}", f.share_b);
        // the same model fuses all of its products with itself
        let same = fusable(&bert, &graph("bert_base", 1));
        assert_eq!((same.fused, same.products_a), (same.products_b, same.products_b));
        // a CNN's convolutions run through cuDNN: little or nothing fuses with a transformer
        let cnn = fusable(&graph("resnet50", 1), &bert);
        assert!(cnn.share_a < 0.05, "{cnn:?}");
    }
}
