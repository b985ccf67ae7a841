//! Element types and activations shared by every operator.

use serde::{Deserialize, Serialize};

/// Storage type of a floating-point tensor. Arithmetic is always f32 inside kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    Bf16,
}

impl DType {
    pub const ALL: [DType; 2] = [DType::F32, DType::Bf16];

    pub fn bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::Bf16 => 2,
        }
    }

    /// Suffix of the kernel instantiation for this type.
    pub fn suffix(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::Bf16 => "bf16",
        }
    }

    pub fn elem(self) -> ElemType {
        match self {
            DType::F32 => ElemType::F32,
            DType::Bf16 => ElemType::Bf16,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.suffix())
    }
}

/// Element type of any device tensor an operator touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElemType {
    F32,
    Bf16,
    I32,
    U32,
}

impl ElemType {
    pub fn bytes(self) -> usize {
        match self {
            ElemType::F32 | ElemType::I32 | ElemType::U32 => 4,
            ElemType::Bf16 => 2,
        }
    }

    /// Decodes little-endian device bytes into f64 values (exact for every type).
    pub fn decode(self, raw: &[u8]) -> Vec<f64> {
        match self {
            ElemType::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
            ElemType::Bf16 => {
                raw.chunks_exact(2).map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64).collect()
            }
            ElemType::I32 => raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
            ElemType::U32 => raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        }
    }
}

/// Exact widening of a bf16 bit pattern.
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Round-to-nearest-even narrowing, as the kernels do it.
pub fn f32_to_bf16(f: f32) -> u16 {
    let u = f.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 0x40) as u16;
    }
    let rounded = u.wrapping_add(0x7fff + ((u >> 16) & 1));
    (rounded >> 16) as u16
}

/// Element-wise activation; the numeric codes match `ACT_*` in `common.cuh`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    None,
    Relu,
    Relu6,
    /// Exact (erf) GELU, as in BERT and ViT.
    Gelu,
    /// tanh-approximated GELU, as in GPT-2.
    GeluTanh,
    Silu,
    /// As in BERT's pooler.
    Tanh,
}

impl Activation {
    pub fn code(self) -> i32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Relu6 => 2,
            Activation::Gelu => 3,
            Activation::GeluTanh => 4,
            Activation::Silu => 5,
            Activation::Tanh => 6,
        }
    }

    /// The same function in f64, for CPU references.
    pub fn apply(self, v: f64) -> f64 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Relu6 => v.clamp(0.0, 6.0),
            Activation::Gelu => 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)),
            Activation::GeluTanh => {
                let inner = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
                0.5 * v * (1.0 + inner.tanh())
            }
            Activation::Silu => v / (1.0 + (-v).exp()),
            Activation::Tanh => v.tanh(),
        }
    }

    /// FLOPs charged per element (a rough, documented count; transcendental calls count as
    /// one operation each).
    pub fn flops(self) -> f64 {
        match self {
            Activation::None => 0.0,
            Activation::Relu => 1.0,
            Activation::Relu6 => 2.0,
            Activation::Gelu => 5.0,
            Activation::GeluTanh => 8.0,
            Activation::Silu => 4.0,
            Activation::Tanh => 4.0,
        }
    }
}

/// erf in f64, accurate to ~1e-13 (std has no erf): the Maclaurin series below 2.5, where
/// its cancellation costs at most three digits, and a continued fraction for erfc above.
pub fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-18 * sum.abs() {
                break;
            }
        }
        return sum * 2.0 / std::f64::consts::PI.sqrt();
    }
    let s = x.signum();
    s * (1.0 - erfc_pos(x.abs()))
}

/// erfc for x >= 2.5 by a continued fraction (Lentz), accurate to double precision.
fn erfc_pos(x: f64) -> f64 {
    // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + 2/(x + ...)))))
    let tiny = 1e-300;
    let mut f = x;
    if f == 0.0 {
        f = tiny;
    }
    let mut c = f;
    let mut d = 0.0;
    for n in 1..300 {
        let a = n as f64 / 2.0;
        d = x + a * d;
        if d == 0.0 {
            d = tiny;
        }
        c = x + a / c;
        if c == 0.0 {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_round_trip_is_exact_for_representable_values() {
        for v in [0.0f32, 1.0, -2.5, 0.15625, 3.0e38, -1.0e-30] {
            let h = f32_to_bf16(v);
            assert_eq!(f32_to_bf16(bf16_to_f32(h)), h);
        }
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0)), 1.0);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 1.0 / 64.0);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn erf_matches_known_values() {
        let known = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (-1.5, -0.9661051464753108),
            (3.0, 0.9999779095030014),
        ];
        for (x, want) in known {
            assert!((erf(x) - want).abs() < 1e-13, "erf({x}) = {} want {want}", erf(x));
        }
    }

    #[test]
    fn gelu_variants_agree_closely_and_relu6_clamps() {
        for v in [-3.0, -1.0, -0.1, 0.0, 0.3, 1.0, 2.5] {
            let exact = Activation::Gelu.apply(v);
            let approx = Activation::GeluTanh.apply(v);
            assert!((exact - approx).abs() < 1e-3, "{v}: {exact} vs {approx}");
        }
        assert_eq!(Activation::Relu6.apply(7.5), 6.0);
        assert_eq!(Activation::Relu6.apply(-1.0), 0.0);
    }
}
