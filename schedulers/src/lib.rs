//! Scheduling policies for co-located inference, run in a simulator driven by measured
//! timings and for real through the harness. So far: the simulator ([`sim`]) and what it
//! forecasts for a suite before anything runs ([`forecast`]).

pub mod error;
pub mod forecast;
pub mod sim;

pub use error::{Error, Result};
