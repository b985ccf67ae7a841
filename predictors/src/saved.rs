//! Fitted predictors saved as JSON, with the SHA-256 of the manifest of the dataset they were
//! trained on, and loaded back to predict exactly as before.

use std::path::{Path, PathBuf};

use coloc_dataset::Dataset;
use coloc_workloads::scenario::SoloShare;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::abacus::{Abacus, AbacusParams};
use crate::counters::Utilisations;
use crate::error::{Error, Result};
use crate::gbt::{Gbt, GbtParams};
use crate::gpulet::{Gpulet, GpuletEwma, GpuletEwmaParams, GpuletParams};
use crate::igniter::{Igniter, IgniterParams};
use crate::online::{OnlineCoarse, OnlineCoarseParams, OnlineLearning};
use crate::perkernel::{KernelProfiles, PerKernel, PerKernelParams};
use crate::predictor::{Fit, Online, Predictor};
use crate::query::{Example, Query};
use crate::solo::{SoloAtShare, SoloAtShareParams};

/// The version of the file format; a file of another version is refused.
pub const FORMAT: u32 = 1;

/// Any fitted predictor, by kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
pub enum Fitted {
    SoloAtShare(SoloAtShare),
    OnlineCoarse(OnlineCoarse),
    Gpulet(Gpulet),
    GpuletEwma(GpuletEwma),
    Igniter(Igniter),
    Abacus(Abacus),
    /// Boxed: a booster is large beside the other states.
    Gbt(Box<Gbt>),
    PerKernel(PerKernel),
}

/// Which predictor to fit, with its default parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    SoloAtShare,
    OnlineCoarse,
    OnlineCoarseDrift,
    Gpulet,
    GpuletEwma,
    Igniter,
    Abacus,
    Gbt,
    PerKernel,
    PerKernelDrift,
    PerKernelSgd,
    Sgd,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::SoloAtShare,
        Kind::OnlineCoarse,
        Kind::OnlineCoarseDrift,
        Kind::Gpulet,
        Kind::GpuletEwma,
        Kind::Igniter,
        Kind::Abacus,
        Kind::Gbt,
        Kind::PerKernel,
        Kind::PerKernelDrift,
        Kind::PerKernelSgd,
        Kind::Sgd,
    ];

    /// Its name on the command line.
    pub fn key(self) -> &'static str {
        match self {
            Kind::SoloAtShare => "solo-at-share",
            Kind::OnlineCoarse => "online-coarse",
            Kind::OnlineCoarseDrift => "online-coarse-drift",
            Kind::Gpulet => "gpulet",
            Kind::GpuletEwma => "gpulet-ewma",
            Kind::Igniter => "igniter",
            Kind::Abacus => "abacus",
            Kind::Gbt => "gbt",
            Kind::PerKernel => "per-kernel",
            Kind::PerKernelDrift => "per-kernel-drift",
            Kind::PerKernelSgd => "per-kernel-sgd",
            Kind::Sgd => "sgd",
        }
    }

    /// The kind named `key`.
    pub fn from_key(key: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.key() == key)
    }
}

/// Fits `kind` on `train`; gpulet's two and iGniter's need `counters`, the per-kernel ones
/// `kernels`.
pub fn fit(
    kind: Kind,
    train: &[&Example],
    counters: Option<&Utilisations>,
    kernels: Option<&KernelProfiles>,
) -> Result<Fitted> {
    let per_kernel = || {
        kernels
            .cloned()
            .map(PerKernelParams::new)
            .ok_or_else(|| Error::data(format!("{kind:?}"), "needs the solo kernel profiles"))
    };
    let counters = || {
        counters.cloned().ok_or_else(|| Error::data(format!("{kind:?}"), "needs solo hardware counters (--counters)"))
    };
    let gpulet = || counters().map(|utilisations| GpuletParams { utilisations });
    Ok(match kind {
        Kind::SoloAtShare => Fitted::SoloAtShare(SoloAtShareParams.fit(train)?),
        Kind::OnlineCoarse => Fitted::OnlineCoarse(OnlineCoarseParams::default().fit(train)?),
        Kind::OnlineCoarseDrift => Fitted::OnlineCoarse(OnlineCoarseParams::with_drift_detection().fit(train)?),
        Kind::Gpulet => Fitted::Gpulet(gpulet()?.fit(train)?),
        Kind::GpuletEwma => Fitted::GpuletEwma(GpuletEwmaParams { gpulet: gpulet()?, alpha: 0.05 }.fit(train)?),
        Kind::Igniter => Fitted::Igniter(IgniterParams { utilisations: counters()? }.fit(train)?),
        Kind::Abacus => Fitted::Abacus(AbacusParams::default().fit(train)?),
        Kind::Gbt => Fitted::Gbt(Box::new(GbtParams::default().fit(train)?)),
        Kind::PerKernel => Fitted::PerKernel(per_kernel()?.fit(train)?),
        Kind::PerKernelDrift => Fitted::PerKernel(per_kernel()?.with_drift_detection().fit(train)?),
        Kind::PerKernelSgd => Fitted::PerKernel(per_kernel()?.learnt_by(OnlineLearning::sgd()).fit(train)?),
        Kind::Sgd => Fitted::OnlineCoarse(OnlineLearning::sgd().fit(train)?),
    })
}

impl Fitted {
    /// An error naming what this predictor lacks to predict a batch of `model` at graph size
    /// `bucket` on `share` (the solo counters of gpulet's and iGniter's models, the solo
    /// timeline of the per-kernel ones), where it would otherwise quietly predict less.
    pub fn covers(&self, model: &str, bucket: u32, share: SoloShare) -> Result<()> {
        match self {
            Fitted::Gpulet(p) => p.utilisations().get(model, bucket, share).map(|_| ()),
            Fitted::GpuletEwma(p) => p.base().utilisations().get(model, bucket, share).map(|_| ()),
            Fitted::Igniter(p) => p.utilisations().get(model, bucket, share).map(|_| ()),
            Fitted::PerKernel(p) => p.profiles().get(model, bucket, share).map(|_| ()),
            Fitted::SoloAtShare(_) | Fitted::OnlineCoarse(_) | Fitted::Abacus(_) | Fitted::Gbt(_) => Ok(()),
        }
    }

    fn inner(&self) -> &dyn Predictor {
        match self {
            Fitted::SoloAtShare(p) => p,
            Fitted::OnlineCoarse(p) => p,
            Fitted::Gpulet(p) => p,
            Fitted::GpuletEwma(p) => p,
            Fitted::Igniter(p) => p,
            Fitted::Abacus(p) => p,
            Fitted::Gbt(p) => p.as_ref(),
            Fitted::PerKernel(p) => p,
        }
    }
}

impl Predictor for Fitted {
    fn name(&self) -> &'static str {
        self.inner().name()
    }
    fn predict(&self, query: &Query) -> f64 {
        self.inner().predict(query)
    }
}

impl Online for Fitted {
    /// Static predictors ignore observations.
    fn update(&mut self, query: &Query, measured_us: f64) {
        match self {
            Fitted::SoloAtShare(_) | Fitted::Gpulet(_) | Fitted::Igniter(_) | Fitted::Abacus(_) | Fitted::Gbt(_) => {}
            Fitted::OnlineCoarse(p) => p.update(query, measured_us),
            Fitted::GpuletEwma(p) => p.update(query, measured_us),
            Fitted::PerKernel(p) => p.update(query, measured_us),
        }
    }
}

/// A fitted predictor and what it was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedPredictor {
    pub format: u32,
    /// The predictor's name on the leaderboard.
    pub name: String,
    /// The dataset directory it was trained on, as given, and the SHA-256 of its manifest.
    pub dataset: PathBuf,
    pub manifest_sha256: String,
    /// Training examples.
    pub examples: usize,
    /// Further datasets it was trained on (`coloc fit --with`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with: Vec<TrainedOn>,
    pub fitted: Fitted,
}

/// A dataset a predictor was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedOn {
    pub dataset: PathBuf,
    pub manifest_sha256: String,
}

/// The SHA-256 of a dataset's manifest, in hex.
pub fn manifest_sha256(ds: &Dataset) -> Result<String> {
    let path = ds.dir().join(coloc_dataset::MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| coloc_dataset::error::Error::io(&path, e))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

impl SavedPredictor {
    pub fn new(fitted: Fitted, ds: &Dataset, examples: usize) -> Result<SavedPredictor> {
        Ok(SavedPredictor {
            format: FORMAT,
            name: fitted.name().to_string(),
            dataset: ds.dir().to_path_buf(),
            manifest_sha256: manifest_sha256(ds)?,
            examples,
            with: Vec::new(),
            fitted,
        })
    }

    /// The same, also trained on `more`.
    pub fn with(mut self, more: &[&Dataset]) -> Result<SavedPredictor> {
        for ds in more {
            self.with.push(TrainedOn { dataset: ds.dir().to_path_buf(), manifest_sha256: manifest_sha256(ds)? });
        }
        Ok(self)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(coloc_dataset::store::save_json(path, self)?)
    }

    /// Loads a saved predictor; a file of another format is refused, naming it.
    pub fn load(path: &Path) -> Result<SavedPredictor> {
        let saved: SavedPredictor = coloc_dataset::store::load_json(path)?;
        if saved.format != FORMAT {
            return Err(Error::data(
                path.display().to_string(),
                format!("format {} where this coloc reads format {FORMAT}: fit the predictor again", saved.format),
            ));
        }
        Ok(saved)
    }

    /// Whether `ds` is the dataset it was trained on (its manifest unchanged).
    pub fn trained_on(&self, ds: &Dataset) -> Result<bool> {
        Ok(manifest_sha256(ds)? == self.manifest_sha256)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn dataset() -> Dataset {
        Dataset::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200")).unwrap()
    }

    #[test]
    fn a_saved_predictor_loads_back_and_predicts_exactly_as_before() {
        let ds = dataset();
        let ex = crate::query::examples(&ds).unwrap();
        let train: Vec<&Example> = ex.items.iter().step_by(3).collect();
        let fitted = fit(Kind::OnlineCoarseDrift, &train, None, None).unwrap();
        let saved = SavedPredictor::new(fitted, &ds, train.len()).unwrap();
        let path = std::env::temp_dir().join(format!("coloc-saved-{}.json", std::process::id()));
        saved.save(&path).unwrap();
        let back = SavedPredictor::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, saved);
        assert!(back.trained_on(&ds).unwrap());
        assert_eq!(back.manifest_sha256.len(), 64);
        for e in ex.items.iter().skip(1).step_by(97) {
            assert_eq!(back.fitted.predict(&e.query).to_bits(), saved.fitted.predict(&e.query).to_bits());
        }
        assert!(fit(Kind::Gpulet, &train, None, None).unwrap_err().to_string().contains("--counters"));
    }

    #[test]
    fn every_kind_saves_and_loads_back_bit_for_bit() {
        let ds = dataset();
        let ex = crate::query::examples(&ds).unwrap();
        let train: Vec<&Example> = ex.items.iter().step_by(40).collect();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let counters = Utilisations::load(&root.join("data/h200-counters")).unwrap();
        let kernels = KernelProfiles::from_dataset(&ds).unwrap();
        for kind in Kind::ALL {
            let fitted = fit(kind, &train, Some(&counters), Some(&kernels)).unwrap();
            // what a model needs beyond the query is checked, not assumed
            assert!(fitted.covers("resnet50", 8, SoloShare::Device).is_ok(), "{kind:?}");
            let needs_more = matches!(
                kind,
                Kind::Gpulet
                    | Kind::GpuletEwma
                    | Kind::Igniter
                    | Kind::PerKernel
                    | Kind::PerKernelDrift
                    | Kind::PerKernelSgd
            );
            let lacks = fitted.covers("tiny", 1, SoloShare::Device);
            assert_eq!(lacks.is_err(), needs_more, "{kind:?}: {lacks:?}");
            if let Err(e) = lacks {
                assert!(e.to_string().contains("tiny"), "{kind:?}: {e}");
            }
            let saved = SavedPredictor::new(fitted, &ds, train.len()).unwrap();
            let path = std::env::temp_dir().join(format!("coloc-saved-{}-{}.json", kind.key(), std::process::id()));
            saved.save(&path).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            let back = SavedPredictor::load(&path).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            std::fs::remove_file(&path).unwrap();
            for e in ex.items.iter().skip(1).step_by(997) {
                let (a, b) = (back.fitted.predict(&e.query), saved.fitted.predict(&e.query));
                assert_eq!(a.to_bits(), b.to_bits(), "{kind:?}: {a} after loading, {b} before");
            }
        }
    }

    #[test]
    fn a_file_of_another_format_is_refused_naming_it() {
        let ds = dataset();
        let ex = crate::query::examples(&ds).unwrap();
        let train: Vec<&Example> = ex.items.iter().take(10).collect();
        let mut saved = SavedPredictor::new(fit(Kind::SoloAtShare, &train, None, None).unwrap(), &ds, 10).unwrap();
        saved.format = FORMAT + 1;
        let path = std::env::temp_dir().join(format!("coloc-saved-format-{}.json", std::process::id()));
        saved.save(&path).unwrap();
        let err = SavedPredictor::load(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("coloc-saved-format") && err.contains("fit the predictor again"), "{err}");
    }
}
