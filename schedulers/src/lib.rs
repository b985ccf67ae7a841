//! Scheduling policies for co-located inference, run in a simulator driven by measured
//! timings and for real through the harness: the simulator ([`sim`]), what it forecasts for a
//! suite before anything runs ([`forecast`]), serving workloads ([`workload`]) and what was
//! measured of their models ([`menu`]), the placement planners ([`policy`]) judged by one
//! latency model ([`estimate`]), their plans as scenarios ([`placement`]), and the goodput
//! search that scores them ([`goodput`]).

pub mod compare;
pub mod error;
pub mod estimate;
pub mod forecast;
pub mod goodput;
pub mod menu;
pub mod pipeline;
pub mod placement;
pub mod policy;
pub mod sim;
pub mod switch;
pub mod workload;

pub use error::{Error, Result};
