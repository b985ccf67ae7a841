//! Real partition mechanisms: streams with priorities (see [`crate::gpu::ExecContext::new_stream`]),
//! green contexts ([`green`]), MPS client processes ([`mps`]); MIG is detected and reported,
//! never changed ([`mig`]). [`probe`] is the small job every mechanism runs to show what it
//! grants: the SMs the driver reports, the SMs a kernel really lands on, and the time of a
//! fixed amount of compute-bound work.

pub mod fusion;
pub mod green;
pub mod mig;
pub mod mps;
pub mod priority;
pub mod probe;
pub mod scaling;

pub use green::{GreenPartition, SmSplit};
pub use mps::MpsDaemon;
