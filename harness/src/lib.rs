//! Runs co-located inference on the GPU under a partition setting and records per-kernel and
//! per-request timings into Parquet datasets with a run manifest.
