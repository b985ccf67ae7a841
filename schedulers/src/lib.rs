//! Scheduling policies for co-located inference, run in a simulator driven by measured
//! timings and for real through the harness.
