//! The policies' decisions, one for the simulator and for real: each element's slowdown
//! estimated from its stages' own service times, and the response when an estimate moves.

use std::collections::VecDeque;

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
    /// The estimates the current layout was made for.
    basis: Vec<f64>,
}

impl Controller {
    /// Starts from the split balanced on solo times `op_us`, stage `j` on element `j`.
    pub fn new(policy: Policy, params: Params, op_us: &[f64], elements: usize) -> Controller {
        Controller {
            policy,
            params,
            op_us: op_us.to_vec(),
            layout: Layout { split: Split::balanced(op_us, &vec![1.0; elements]), element_of: (0..elements).collect() },
            ratios: vec![VecDeque::new(); elements],
            fresh: vec![0; elements],
            estimate: vec![1.0; elements],
            basis: vec![1.0; elements],
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
    /// `idle(e)` is the slowdown of an element that runs no stage, as the system sees it.
    /// Returns the layout before, if this changed it.
    pub fn after_service(&mut self, element: usize, idle: impl Fn(usize) -> f64) -> Option<Layout> {
        let watches = matches!(self.policy, Policy::LeastLoaded | Policy::Odin);
        if !watches || self.fresh[element] < self.params.window {
            return None;
        }
        let r = &self.ratios[element];
        self.estimate[element] = r.iter().sum::<f64>() / r.len() as f64;
        self.fresh[element] = 0;
        let elements = self.estimate.len();
        for e in 0..elements {
            if !self.layout.element_of.contains(&e) {
                self.estimate[e] = idle(e);
            }
        }
        let moved = (0..elements).any(|e| (self.estimate[e] / self.basis[e] - 1.0).abs() > self.params.threshold);
        if !moved {
            return None;
        }
        self.basis = self.estimate.clone();
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
        (self.layout != before).then_some(before)
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
