//! A small multi-layer perceptron for regression: ReLU hidden layers, one linear output,
//! inputs standardised with the training set's mean and spread, squared error, Adam on
//! mini-batches. Deterministic: the weights start from a seeded generator and the batches are
//! shuffled from the same seed, so a fit is the same bit for bit on every machine.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Training settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MlpParams {
    pub hidden: [usize; 3],
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for MlpParams {
    /// Three hidden layers of 32 (Abacus's predictor), Adam at 1e-3, 256 to a batch.
    fn default() -> Self {
        MlpParams { hidden: [32, 32, 32], epochs: 8, batch: 256, learning_rate: 1e-3, seed: 2021 }
    }
}

/// One dense layer: `out = W in + b`, W stored input by input (`w[j * outputs + o]`), so that a
/// forward pass adds whole columns, which vectorises, rather than reducing rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Layer {
    inputs: usize,
    outputs: usize,
    w: Vec<f64>,
    b: Vec<f64>,
}

/// A fitted network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    mean: Vec<f64>,
    scale: Vec<f64>,
    layers: Vec<Layer>,
    /// The first layer with the standardisation folded in (`W / scale`, `b - W mean / scale`),
    /// so that predicting takes raw inputs and skips the zeros of one-hot ones.
    first: Layer,
    /// `first` and the later layers in single precision, built on first use: a prediction is
    /// within a few parts per million of the double-precision one (far below any measured
    /// error) and costs about half as much, as twice as many lanes fit in a vector.
    #[serde(skip)]
    single: Derived<Vec<Layer32>>,
}

/// A value derived from the others fields of its owner and built on first use: equal whenever
/// its owners are (it adds nothing to them), so that a model that has predicted equals one just
/// loaded.
#[derive(Clone, Debug, Default)]
struct Derived<T>(std::sync::OnceLock<T>);

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A [`Layer`] in single precision.
#[derive(Clone, Debug)]
struct Layer32 {
    outputs: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

impl From<&Layer> for Layer32 {
    fn from(l: &Layer) -> Layer32 {
        Layer32 {
            outputs: l.outputs,
            w: l.w.iter().map(|v| *v as f32).collect(),
            b: l.b.iter().map(|v| *v as f32).collect(),
        }
    }
}

impl Layer32 {
    /// `out = W a + b`, through a ReLU if asked; inputs at zero (one-hot, after a ReLU) skipped.
    fn affine(&self, a: &[f32], out: &mut [f32], relu: bool) {
        match self.outputs {
            16 => self.affine_n::<16>(a, out, relu),
            32 => self.affine_n::<32>(a, out, relu),
            64 => self.affine_n::<64>(a, out, relu),
            _ => self.affine_any(a, out, relu),
        }
    }

    /// [`Self::affine`] for `N` outputs known when compiling: the sums stay in registers
    /// rather than going to memory for every input. The ReLU goes on `out`, after the copy:
    /// applied to the sums, the compiler was seen to turn the 32 of them into scalars.
    #[inline(never)]
    fn affine_n<const N: usize>(&self, a: &[f32], out: &mut [f32], relu: bool) {
        let mut sums: [f32; N] = self.b[..N].try_into().expect("N biases");
        for (column, &aj) in self.w.chunks_exact(N).zip(a) {
            if aj == 0.0 {
                continue;
            }
            let column: &[f32; N] = column.try_into().expect("N weights");
            for (o, w) in sums.iter_mut().zip(column) {
                *o += w * aj;
            }
        }
        out.copy_from_slice(&sums);
        if relu {
            for o in out.iter_mut() {
                *o = o.max(0.0);
            }
        }
    }

    fn affine_any(&self, a: &[f32], out: &mut [f32], relu: bool) {
        out.copy_from_slice(&self.b);
        for (j, &aj) in a.iter().enumerate() {
            if aj == 0.0 {
                continue;
            }
            let column = &self.w[j * self.outputs..(j + 1) * self.outputs];
            for (o, w) in out.iter_mut().zip(column) {
                *o += w * aj;
            }
        }
        if relu {
            for o in out.iter_mut() {
                *o = o.max(0.0);
            }
        }
    }
}

/// SplitMix64 as a generator of uniform numbers in [0, 1).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Mlp {
    /// The output for one input row, in single precision. Allocation-free: two buffers on the
    /// stack, as wide as the widest layer allows (`MAX_WIDTH`; a wider network takes the
    /// double-precision path).
    pub fn predict(&self, x: &[f64]) -> f64 {
        const MAX_WIDTH: usize = 256;
        let widest = self.layers.iter().map(|l| l.outputs).max().unwrap_or(0);
        if widest.max(x.len()) > MAX_WIDTH {
            return self.predict_double(x);
        }
        let single = self.single.0.get_or_init(|| {
            std::iter::once(&self.first).chain(self.layers.iter().skip(1)).map(Layer32::from).collect()
        });
        let (mut a, mut b) = ([0.0f32; MAX_WIDTH], [0.0f32; MAX_WIDTH]);
        for (to, from) in b.iter_mut().zip(x) {
            *to = *from as f32;
        }
        let last = single.len() - 1;
        single[0].affine(&b[..x.len()], &mut a[..single[0].outputs], last > 0);
        let mut width = single[0].outputs;
        for (i, l) in single.iter().enumerate().skip(1) {
            l.affine(&a[..width], &mut b[..l.outputs], i < last);
            width = l.outputs;
            std::mem::swap(&mut a, &mut b);
        }
        f64::from(a[0])
    }

    /// The output for one input row in double precision, as trained.
    pub fn predict_double(&self, x: &[f64]) -> f64 {
        let mut a = self.first.forward(x, self.layers.len() > 1);
        for (i, layer) in self.layers.iter().enumerate().skip(1) {
            a = layer.forward(&a, i + 1 < self.layers.len());
        }
        a[0]
    }

    /// Fits `y` from rows `x` (every row as long as the first).
    pub fn fit(params: &MlpParams, x: &[Vec<f64>], y: &[f64]) -> Result<Mlp> {
        let n = x.len();
        if n == 0 || n != y.len() || y.iter().any(|v| !v.is_finite()) {
            return Err(Error::data("MLP", format!("{n} rows against {} targets, all finite", y.len())));
        }
        let k = x[0].len();
        if x.iter().any(|r| r.len() != k || r.iter().any(|v| !v.is_finite())) {
            return Err(Error::data("MLP", format!("every input row must hold {k} finite values")));
        }
        if params.epochs == 0 || params.batch == 0 || params.learning_rate.is_nan() || params.learning_rate <= 0.0 {
            return Err(Error::data("MLP", "epochs, batch and learning rate must be positive"));
        }
        let mean: Vec<f64> = (0..k).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
        let scale: Vec<f64> =
            (0..k).map(|j| (x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64).sqrt()).collect();
        let xs: Vec<Vec<f64>> = x.iter().map(|r| standardise(r, &mean, &scale)).collect();
        let mut draw = Draw(params.seed);
        let mut sizes = vec![k];
        sizes.extend(params.hidden);
        sizes.push(1);
        // He initialisation for ReLU layers
        let mut layers: Vec<Layer> = sizes
            .windows(2)
            .map(|w| {
                let bound = (6.0 / w[0] as f64).sqrt();
                let weights = (0..w[0] * w[1]).map(|_| (2.0 * draw.next() - 1.0) * bound).collect();
                Layer { inputs: w[0], outputs: w[1], w: weights, b: vec![0.0; w[1]] }
            })
            .collect();
        let mut adam = Adam::new(&layers, params.learning_rate);
        let mut order: Vec<usize> = (0..n).collect();
        for _ in 0..params.epochs {
            for i in (1..n).rev() {
                let j = (draw.next() * (i + 1) as f64) as usize;
                order.swap(i, j.min(i));
            }
            for chunk in order.chunks(params.batch) {
                let mut grads: Vec<Layer> = layers
                    .iter()
                    .map(|l| Layer {
                        inputs: l.inputs,
                        outputs: l.outputs,
                        w: vec![0.0; l.w.len()],
                        b: vec![0.0; l.b.len()],
                    })
                    .collect();
                for &i in chunk {
                    backprop(&layers, &xs[i], y[i], &mut grads);
                }
                let inv = 1.0 / chunk.len() as f64;
                adam.step(&mut layers, &grads, inv);
            }
        }
        let first = fold(&layers[0], &mean, &scale);
        Ok(Mlp { mean, scale, layers, first, single: Derived::default() })
    }
}

/// The dot product in eight independent sums (a single running sum is one dependent add per
/// element, several times slower), the same on every machine.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// `layer` taking raw inputs: `W' = W / scale`, `b' = b - W' mean` (an input constant in
/// training gets no weight, as [`standardise`] gives it 0).
fn fold(layer: &Layer, mean: &[f64], scale: &[f64]) -> Layer {
    let mut folded = Layer { w: vec![0.0; layer.w.len()], b: layer.b.clone(), ..*layer };
    for j in 0..layer.inputs {
        if scale[j] > 1e-12 {
            let (from, to) = (j * layer.outputs, (j + 1) * layer.outputs);
            for ((fw, w), b) in folded.w[from..to].iter_mut().zip(&layer.w[from..to]).zip(&mut folded.b) {
                *fw = w / scale[j];
                *b -= *fw * mean[j];
            }
        }
    }
    folded
}

/// `(x - mean) / scale`; an input that did not vary in training (scale 0) is held at 0: the
/// network learnt nothing of it, so a value it never saw (a model or mechanism absent from the
/// training data) must not move its output.
fn standardise(x: &[f64], mean: &[f64], scale: &[f64]) -> Vec<f64> {
    x.iter().zip(mean).zip(scale).map(|((v, m), s)| if *s > 1e-12 { (v - m) / s } else { 0.0 }).collect()
}

impl Layer {
    /// `out = W a + b`, through a ReLU if asked.
    fn affine(&self, a: &[f64], out: &mut [f64], relu: bool) {
        out.copy_from_slice(&self.b);
        for (j, aj) in a.iter().enumerate() {
            // inputs at zero (one-hot, after a ReLU) add nothing
            if *aj == 0.0 {
                continue;
            }
            let column = &self.w[j * self.outputs..(j + 1) * self.outputs];
            for (o, w) in out.iter_mut().zip(column) {
                *o += w * aj;
            }
        }
        if relu {
            for o in out.iter_mut() {
                *o = o.max(0.0);
            }
        }
    }

    fn forward(&self, a: &[f64], relu: bool) -> Vec<f64> {
        let mut out = vec![0.0; self.outputs];
        self.affine(a, &mut out, relu);
        out
    }
}

/// Adds the gradient of `0.5 (f(x) - y)^2` to `grads`.
fn backprop(layers: &[Layer], x: &[f64], y: f64, grads: &mut [Layer]) {
    let mut acts = vec![x.to_vec()];
    for (i, l) in layers.iter().enumerate() {
        let next = l.forward(acts.last().expect("the input"), i + 1 < layers.len());
        acts.push(next);
    }
    let mut delta = vec![acts.last().expect("the output")[0] - y];
    for i in (0..layers.len()).rev() {
        let (l, g, input) = (&layers[i], &mut grads[i], &acts[i]);
        for (gb, d) in g.b.iter_mut().zip(&delta) {
            *gb += d;
        }
        for (j, v) in input.iter().enumerate() {
            let column = &mut g.w[j * l.outputs..(j + 1) * l.outputs];
            for (gw, d) in column.iter_mut().zip(&delta) {
                *gw += d * v;
            }
        }
        if i > 0 {
            // through W, then the ReLU of the layer below (its activation is positive where it passed)
            delta = (0..l.inputs)
                .map(|j| {
                    let back = dot(&l.w[j * l.outputs..(j + 1) * l.outputs], &delta);
                    if input[j] > 0.0 { back } else { 0.0 }
                })
                .collect();
        }
    }
}

/// Adam's moments for every weight and bias.
struct Adam {
    lr: f64,
    t: i32,
    m: Vec<Layer>,
    v: Vec<Layer>,
}

impl Adam {
    fn new(layers: &[Layer], lr: f64) -> Adam {
        let zero = |l: &Layer| Layer {
            inputs: l.inputs,
            outputs: l.outputs,
            w: vec![0.0; l.w.len()],
            b: vec![0.0; l.b.len()],
        };
        Adam { lr, t: 0, m: layers.iter().map(zero).collect(), v: layers.iter().map(zero).collect() }
    }

    fn step(&mut self, layers: &mut [Layer], grads: &[Layer], scale: f64) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        let lr = self.lr;
        let update = |p: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64]| {
            for i in 0..p.len() {
                let gi = g[i] * scale;
                m[i] = B1 * m[i] + (1.0 - B1) * gi;
                v[i] = B2 * v[i] + (1.0 - B2) * gi * gi;
                p[i] -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + 1e-8);
            }
        };
        for (((l, g), m), v) in layers.iter_mut().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            update(&mut l.w, &g.w, &mut m.w, &mut v.w);
            update(&mut l.b, &g.b, &mut m.b, &mut v.b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_learns_a_smooth_nonlinear_function_and_fits_the_same_twice() {
        // y = x0 * x1 + sin(x2), on a grid
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut d = Draw(5);
        for _ in 0..4000 {
            let r = [d.next() * 2.0 - 1.0, d.next() * 2.0 - 1.0, d.next() * 3.0];
            y.push(r[0] * r[1] + r[2].sin());
            x.push(r.to_vec());
        }
        let params = MlpParams { epochs: 60, batch: 32, learning_rate: 3e-3, ..MlpParams::default() };
        let net = Mlp::fit(&params, &x, &y).unwrap();
        let mse = x.iter().zip(&y).map(|(r, t)| (net.predict(r) - t).powi(2)).sum::<f64>() / x.len() as f64;
        let var = {
            let m = y.iter().sum::<f64>() / y.len() as f64;
            y.iter().map(|t| (t - m).powi(2)).sum::<f64>() / y.len() as f64
        };
        assert!(mse < 0.02 * var, "mse {mse} against variance {var}");
        // predicting with the standardisation folded in agrees with the training's forward pass
        for r in x.iter().take(50) {
            let mut a = standardise(r, &net.mean, &net.scale);
            for (i, layer) in net.layers.iter().enumerate() {
                a = layer.forward(&a, i + 1 < net.layers.len());
            }
            assert!((a[0] - net.predict_double(r)).abs() < 1e-9 * (1.0 + a[0].abs()), "{} vs {}", a[0], net.predict(r));
            // single precision within a few parts per million of it
            assert!((a[0] - net.predict(r)).abs() < 2e-5 * (1.0 + a[0].abs()), "{} vs {}", a[0], net.predict(r));
        }
        assert_eq!(Mlp::fit(&params, &x, &y).unwrap(), net);
        // widths with their own single-precision paths (16, 64) and without one (5)
        let params = MlpParams { hidden: [16, 64, 5], epochs: 2, ..params };
        let net = Mlp::fit(&params, &x, &y).unwrap();
        for r in x.iter().take(50) {
            let (single, double) = (net.predict(r), net.predict_double(r));
            assert!((single - double).abs() < 2e-5 * (1.0 + double.abs()), "{single} vs {double}");
        }
    }

    #[test]
    fn the_gradient_is_the_derivative_of_the_loss() {
        let layers = vec![
            Layer { inputs: 2, outputs: 3, w: vec![0.3, -0.2, 0.5, 0.1, -0.4, 0.7], b: vec![0.1, 0.2, -0.1] },
            Layer { inputs: 3, outputs: 1, w: vec![0.6, -0.5, 0.4], b: vec![0.05] },
        ];
        let (x, y) = ([0.7, -1.2], 0.4);
        let loss = |ls: &[Layer]| {
            let h = ls[0].forward(&x, true);
            0.5 * (ls[1].forward(&h, false)[0] - y).powi(2)
        };
        let mut grads: Vec<Layer> =
            layers.iter().map(|l| Layer { w: vec![0.0; l.w.len()], b: vec![0.0; l.b.len()], ..l.clone() }).collect();
        backprop(&layers, &x, y, &mut grads);
        for li in 0..2 {
            for wi in 0..layers[li].w.len() {
                let mut up = layers.clone();
                up[li].w[wi] += 1e-6;
                let mut down = layers.clone();
                down[li].w[wi] -= 1e-6;
                let numeric = (loss(&up) - loss(&down)) / 2e-6;
                assert!(
                    (numeric - grads[li].w[wi]).abs() < 1e-6,
                    "layer {li} weight {wi}: {numeric} vs {}",
                    grads[li].w[wi]
                );
            }
        }
    }

    #[test]
    fn an_input_constant_in_training_does_not_move_the_output() {
        let x: Vec<Vec<f64>> = (0..200).map(|i| vec![f64::from(i) / 200.0, 0.0]).collect();
        let y: Vec<f64> = x.iter().map(|r| 2.0 * r[0]).collect();
        let net = Mlp::fit(&MlpParams { epochs: 5, ..MlpParams::default() }, &x, &y).unwrap();
        assert_eq!(net.predict(&[0.5, 0.0]), net.predict(&[0.5, 1.0]));
        assert_eq!(net.predict(&[0.5, 0.0]), net.predict(&[0.5, -7.0]));
    }

    #[test]
    fn bad_training_data_is_refused() {
        let p = MlpParams::default();
        assert!(Mlp::fit(&p, &[], &[]).is_err());
        assert!(Mlp::fit(&p, &[vec![1.0], vec![1.0, 2.0]], &[1.0, 2.0]).is_err());
        assert!(Mlp::fit(&p, &[vec![f64::NAN]], &[1.0]).is_err());
    }
}
