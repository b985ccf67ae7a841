//! Every committed serving workload (a TOML with models and rates, for `coloc schedule`) loads.

use coloc_schedulers::workload::Workload;

#[test]
fn every_committed_serving_workload_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../serving");
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // the suites there (plans written as scenarios) have no models
        if path.extension().is_none_or(|e| e != "toml") || !text.contains("[[model]]") {
            continue;
        }
        let w = Workload::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        loaded.push((path.file_name().unwrap().to_string_lossy().into_owned(), w));
    }
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["mixed.toml", "transformers.toml", "transformers-2gpu.toml"] {
        assert!(names.contains(&expected), "{expected} not among {names:?}");
    }
    let two = &loaded.iter().find(|(n, _)| n == "transformers-2gpu.toml").unwrap().1;
    assert_eq!(two.gpus, 2);
}
