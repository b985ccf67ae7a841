//! The policies' decisions, one for the simulator and for real: each element's slowdown
//! estimated from its stages' own service times, and the response when an estimate moves.

use std::collections::VecDeque;

use coloc_kernels::stats::median_of;

use super::{Params, Policy, Split};

/// A split and the element each stage runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub split: Split,
    pub element_of: Vec<usize>,
}

impl Layout {
    /// The stages whose operators or element differ from `before`'s.
    pub fn changed_stages(&self, before: &Layout) -> Vec<usize> {
        (0..self.split.stages())
            .filter(|&s| self.split.range(s) != before.split.range(s) || self.element_of[s] != before.element_of[s])
            .collect()
    }
}

/// What a policy knows and decides while a pipeline runs.
#[derive(Clone, Debug)]
pub struct Controller {
    policy: Policy,
    params: Params,
    op_us: Vec<f64>,
    layout: Layout,
    /// Per element: observed over solo time of its last services, and the count since its
    /// last estimate.
    ratios: Vec<VecDeque<f64>>,
    fresh: Vec<usize>,
    estimate: Vec<f64>,
    /// Per element: the estimate the current layout was made for; `None` while the element
    /// settles after a response (its next estimate, made under the new layout, becomes it).
    basis: Vec<Option<f64>>,
}

impl Controller {
    /// Starts from the split balanced on solo times `op_us`, stage `j` on element `j`, expecting
    /// element `e` to run `basis[e]` times its solo time without interference (1 in the
    /// simulator; what the unstressed pipeline measured on a GPU, where busy neighbours slow
    /// each other a little). `basis` has one entry per element.
    pub fn new(policy: Policy, params: Params, op_us: &[f64], basis: &[f64]) -> Controller {
        let elements = basis.len();
        Controller {
            policy,
            params,
            op_us: op_us.to_vec(),
            layout: Layout { split: Split::balanced(op_us, &vec![1.0; elements]), element_of: (0..elements).collect() },
            ratios: vec![VecDeque::new(); elements],
            fresh: vec![0; elements],
            estimate: basis.to_vec(),
            basis: basis.iter().map(|&b| Some(b)).collect(),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Each element's last estimated slowdown.
    pub fn estimates(&self) -> &[f64] {
        &self.estimate
    }

    /// Notes one service of `element`: its time over its solo time.
    pub fn observe(&mut self, element: usize, ratio: f64) {
        let ratios = &mut self.ratios[element];
        ratios.push_back(ratio);
        if ratios.len() > self.params.window {
            ratios.pop_front();
        }
        self.fresh[element] += 1;
    }

    /// After a service of `element` ended: once a window of services has been observed there
    /// since its last estimate, a watching policy (LLS, ODIN) estimates its slowdown and
    /// responds if any element's estimate moved past the threshold since the layout was made.
    /// After a response every element whose stages changed settles: its window starts afresh,
    /// and its first estimate under the new layout is what later ones are compared with (layers
    /// moved to an element change what it is slowed by, which is not a new interference). The
    /// caller feeds only services run under the current layout.
    /// `idle(e)` is the slowdown of an element that runs no stage, as the system sees it.
    /// Returns the layout before, if this changed it.
    pub fn after_service(&mut self, element: usize, idle: impl Fn(usize) -> f64) -> Option<Layout> {
        let watches = matches!(self.policy, Policy::LeastLoaded | Policy::Odin);
        if !watches || self.fresh[element] < self.params.window {
            return None;
        }
        // the median: a window that an interference began in reads as before or after it,
        // not as a blend that a response would then have to correct
        let r: Vec<f64> = self.ratios[element].iter().copied().collect();
        self.estimate[element] = median_of(&r);
        self.fresh[element] = 0;
        let elements = self.estimate.len();
        for e in 0..elements {
            if !self.layout.element_of.contains(&e) {
                self.estimate[e] = idle(e);
            }
        }
        for e in 0..elements {
            let estimated = e == element || !self.layout.element_of.contains(&e);
            if estimated && self.basis[e].is_none() {
                self.basis[e] = Some(self.estimate[e]);
            }
        }
        let moved = (0..elements)
            .any(|e| self.basis[e].is_some_and(|b| (self.estimate[e] / b - 1.0).abs() > self.params.threshold));
        if !moved {
            return None;
        }
        let before = self.layout.clone();
        match self.policy {
            Policy::Static | Policy::Oracle => unreachable!("only watching policies respond"),
            Policy::Odin => {
                let weights: Vec<f64> = self.layout.element_of.iter().map(|&e| self.estimate[e]).collect();
                self.layout.split.odin_moves(&self.op_us, &weights);
            }
            Policy::LeastLoaded => {
                let stage_us = self.layout.split.stage_us(&self.op_us);
                let mut order: Vec<usize> = (0..stage_us.len()).collect();
                order.sort_by(|a, b| stage_us[*b].total_cmp(&stage_us[*a]).then(a.cmp(b)));
                let mut load = vec![0.0; elements];
                for s in order {
                    let cost = |x: usize| load[x] + stage_us[s] * self.estimate[x];
                    let e = (0..elements).min_by(|&x, &y| cost(x).total_cmp(&cost(y))).expect("elements");
                    load[e] += stage_us[s] * self.estimate[e];
                    self.layout.element_of[s] = e;
                }
            }
        }
        if self.layout == before {
            // nothing changed: the estimates stay compared with the same basis
            return None;
        }
        let touched = self
            .layout
            .changed_stages(&before)
            .into_iter()
            .flat_map(|s| [before.element_of[s], self.layout.element_of[s]]);
        for e in touched.collect::<Vec<_>>() {
            self.basis[e] = None;
            self.ratios[e].clear();
            self.fresh[e] = 0;
        }
        Some(before)
    }

    /// The oracle, told each element's true slowdown `of_element(e)`: re-splits to the best
    /// split for it. Returns the layout before, if this changed it.
    pub fn resplit(&mut self, of_element: impl Fn(usize) -> f64) -> Option<Layout> {
        let weights: Vec<f64> = self.layout.element_of.iter().map(|&e| of_element(e)).collect();
        let before = self.layout.clone();
        self.layout.split = Split::balanced(&self.op_us, &weights);
        (self.layout != before).then_some(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPS: [f64; 12] = [100.0; 12];

    fn odin(basis: &[f64]) -> Controller {
        Controller::new(Policy::Odin, Params { window: 4, threshold: 0.1, switch_us: 0.0 }, &OPS, basis)
    }

    /// `n` services of `element` at `ratio`; whether any of them changed the layout.
    fn serve(c: &mut Controller, element: usize, ratio: f64, n: usize) -> bool {
        let mut changed = false;
        for _ in 0..n {
            c.observe(element, ratio);
            changed |= c.after_service(element, |_| 1.0).is_some();
        }
        changed
    }

    #[test]
    fn busy_neighbours_as_the_basis_expects_are_not_interference() {
        let mut c = odin(&[1.15, 1.2]);
        assert!(!serve(&mut c, 0, 1.15, 20) && !serve(&mut c, 1, 1.2, 20), "responded to the basis");
        // the same times against a solo basis are a 15-20% slowdown
        let mut solo = odin(&[1.0, 1.0]);
        assert!(serve(&mut solo, 1, 1.2, 4));
        // and a real slowdown beside busy neighbours is one
        assert!(serve(&mut c, 1, 2.4, 4));
        assert!(c.layout().split.starts()[0] > 6, "layers moved off the slowed element: {:?}", c.layout());
    }

    #[test]
    fn after_a_response_the_new_layouts_first_estimate_is_the_basis() {
        let mut c = odin(&[1.0, 1.0]);
        assert!(serve(&mut c, 1, 2.0, 4), "the slowdown is seen");
        // under the new layout the element runs other layers, 2.6x: not a new interference
        assert!(!serve(&mut c, 1, 2.6, 4));
        assert!(!serve(&mut c, 1, 2.6, 12), "responded again to what the settled basis holds");
        // the interference ends: that is a change
        assert!(serve(&mut c, 1, 1.0, 4));
    }

    #[test]
    fn an_element_whose_stages_a_response_left_alone_keeps_its_basis() {
        let ops = [100.0; 30];
        let params = Params { window: 4, threshold: 0.1, switch_us: 0.0 };
        let mut c = Controller::new(Policy::Odin, params, &ops, &[1.0; 3]);
        let start = c.layout().clone();
        for e in [0, 1] {
            serve(&mut c, e, 1.0, 4);
        }
        assert!(serve(&mut c, 2, 1.3, 4), "the slowdown is seen");
        let untouched: Vec<usize> = (0..3)
            .filter(|e| {
                !c.layout()
                    .changed_stages(&start)
                    .iter()
                    .any(|&s| start.element_of[s] == *e || c.layout().element_of[s] == *e)
            })
            .collect();
        assert_eq!(untouched, vec![0], "layers moved only between elements 1 and 2: {:?}", c.layout());
        // an interference on element 0 right after the response is one, not its new basis
        assert!(serve(&mut c, 0, 1.5, 4));
    }

    #[test]
    fn a_window_that_an_interference_began_in_reads_as_one_side_of_it() {
        let mut c = odin(&[1.0, 1.0]);
        for r in [1.0, 1.0, 1.0, 3.0] {
            c.observe(1, r);
        }
        assert!(c.after_service(1, |_| 1.0).is_none(), "a quarter of the window is not the median");
        assert_eq!(c.estimates()[1], 1.0);
        for r in [3.0, 3.0, 3.0, 3.0] {
            c.observe(1, r);
        }
        assert!(c.after_service(1, |_| 1.0).is_some());
        assert_eq!(c.estimates()[1], 3.0, "not a blend of before and after");
    }
}
