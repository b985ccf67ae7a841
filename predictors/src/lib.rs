//! Interference predictors behind one trait, trained and scored on measured data under
//! workload-shift splits.
