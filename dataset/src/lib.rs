//! The contract of a measured dataset, which the harness writes and predictors, schedulers and
//! reports read: one row type per table ([`rows`], [`solo_rows`]), the manifest read back with
//! serde ([`manifest`]), typed persistence ([`store`]), one reader ([`Dataset`]), and the
//! invariants `coloc dataset check` enforces ([`check`]).

pub mod cell;
pub mod check;
pub mod clock;
pub mod error;
pub mod manifest;
pub mod overlap;
pub mod progress;
pub mod rows;
pub mod slim;
pub mod solo_rows;
pub mod stability;
pub mod store;
pub mod timing;

use std::path::{Path, PathBuf};

use coloc_workloads::scenario::Scenario;

pub use cell::Table;
pub use error::{Error, Result};
pub use manifest::Manifest;

/// The files of a dataset directory besides the tables.
pub const MANIFEST: &str = "manifest.json";
pub const SCENARIOS: &str = "scenarios.json";
pub const SUITE: &str = "suite.toml";
pub const SUMMARY: &str = "summary.txt";

/// A dataset directory written by `coloc measure`.
#[derive(Clone, Debug)]
pub struct Dataset {
    dir: PathBuf,
}

impl Dataset {
    /// Opens `dir`, which must hold a manifest.
    pub fn open(dir: &Path) -> Result<Dataset> {
        let manifest = dir.join(MANIFEST);
        if !manifest.exists() {
            return Err(Error::invalid(
                dir.display().to_string(),
                "no manifest.json: not a dataset written by coloc measure",
            ));
        }
        Ok(Dataset { dir: dir.to_path_buf() })
    }

    /// The directory it is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> Result<Manifest> {
        store::load_json(&self.dir.join(MANIFEST))
    }

    /// The expanded scenarios, the reference's included, with their seeds.
    pub fn scenarios(&self) -> Result<Vec<Scenario>> {
        store::load_json(&self.dir.join(SCENARIOS))
    }

    /// Every row of table `T`.
    pub fn load<T: Table>(&self) -> Result<Vec<T>> {
        if !store::table_path::<T>(&self.dir).exists() && self.manifest()?.dropped(T::NAME) {
            return Err(Error::invalid(
                store::table_path::<T>(&self.dir).display().to_string(),
                "this slim copy (coloc dataset slim) does not hold the table; use the dataset as measured",
            ));
        }
        store::load(&self.dir)
    }

    /// Every row of table `T`, or none where the table was not written: for a table added after
    /// some datasets were measured, where no rows and no table mean different things.
    pub fn load_if_present<T: Table>(&self) -> Result<Option<Vec<T>>> {
        store::load_if_present(&self.dir)
    }

    /// Every row of table `T`, none if the table was not written (no counters without `--ncu`).
    pub fn load_or_empty<T: Table>(&self) -> Result<Vec<T>> {
        store::load_or_empty(&self.dir)
    }
}
