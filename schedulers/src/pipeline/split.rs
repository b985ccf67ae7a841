//! Contiguous stages of a model's operators: balanced on solo times, and ODIN's moves of
//! boundary layers between neighbouring stages.

use std::ops::Range;

/// Stage `j` holds operators `bounds[j]..bounds[j + 1]`; every stage holds at least one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    bounds: Vec<usize>,
}

impl Split {
    /// From the first operator of each stage after the first, over `ops` operators.
    pub fn from_starts(starts: &[usize], ops: usize) -> Option<Split> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(starts);
        bounds.push(ops);
        bounds.windows(2).all(|w| w[0] < w[1]).then_some(Split { bounds })
    }

    pub fn stages(&self) -> usize {
        self.bounds.len() - 1
    }

    pub fn range(&self, stage: usize) -> Range<usize> {
        self.bounds[stage]..self.bounds[stage + 1]
    }

    /// The stage that holds operator `op`.
    pub fn stage_of(&self, op: usize) -> usize {
        self.bounds[1..].partition_point(|&b| b <= op)
    }

    /// Each stage's time: the sum of its operators'.
    pub fn stage_us(&self, op_us: &[f64]) -> Vec<f64> {
        (0..self.stages()).map(|j| op_us[self.range(j)].iter().sum()).collect()
    }

    /// The first operator of each stage after the first.
    pub fn starts(&self) -> &[usize] {
        &self.bounds[1..self.bounds.len() - 1]
    }

    /// The split of `op_us` into `weights.len()` stages, stage `j` weighted by `weights[j]` (its
    /// element's slowdown), whose slowest weighted stage is as fast as any split's (dynamic
    /// programming over prefixes, O(stages x ops^2)).
    pub fn balanced(op_us: &[f64], weights: &[f64]) -> Split {
        let (n, k) = (op_us.len(), weights.len());
        assert!(k >= 1 && n >= k, "{n} operators cannot fill {k} stages");
        let mut prefix = vec![0.0; n + 1];
        for (i, t) in op_us.iter().enumerate() {
            prefix[i + 1] = prefix[i] + t;
        }
        // best[j][i]: the least bottleneck of ops 0..i in stages 0..=j; cut[j][i]: stage j's start
        let mut best = vec![vec![f64::INFINITY; n + 1]; k];
        let mut cut = vec![vec![0usize; n + 1]; k];
        for i in 1..=n {
            best[0][i] = weights[0] * prefix[i];
        }
        for j in 1..k {
            for i in (j + 1)..=n {
                for s in j..i {
                    let b = best[j - 1][s].max(weights[j] * (prefix[i] - prefix[s]));
                    if b < best[j][i] {
                        (best[j][i], cut[j][i]) = (b, s);
                    }
                }
            }
        }
        let mut bounds = vec![n];
        let mut i = n;
        for j in (1..k).rev() {
            i = cut[j][i];
            bounds.push(i);
        }
        bounds.push(0);
        bounds.reverse();
        Split { bounds }
    }

    /// ODIN's re-balancing: while it lowers the slowest weighted stage, move one boundary
    /// operator out of the slowest stage into the neighbour for which the result is fastest.
    /// Returns the number of operators moved.
    pub fn odin_moves(&mut self, op_us: &[f64], weights: &[f64]) -> usize {
        let bottleneck = |s: &Split| -> (usize, f64) {
            s.stage_us(op_us)
                .iter()
                .zip(weights)
                .map(|(t, w)| t * w)
                .enumerate()
                .fold((0, f64::MIN), |a, (j, t)| if t > a.1 { (j, t) } else { a })
        };
        let mut moved = 0;
        loop {
            let (slowest, now) = bottleneck(self);
            let mut tries = Vec::new();
            // its first operator to the stage before, its last to the stage after
            if slowest > 0 && self.range(slowest).len() > 1 {
                let mut s = self.clone();
                s.bounds[slowest] += 1;
                tries.push(s);
            }
            if slowest + 1 < self.stages() && self.range(slowest).len() > 1 {
                let mut s = self.clone();
                s.bounds[slowest + 1] -= 1;
                tries.push(s);
            }
            let Some(next) = tries.into_iter().min_by(|a, b| bottleneck(a).1.total_cmp(&bottleneck(b).1)) else {
                return moved;
            };
            if bottleneck(&next).1 >= now {
                return moved;
            }
            *self = next;
            moved += 1;
        }
    }
}
