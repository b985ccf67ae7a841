//! Suites parse, expand into the expected number of scenarios and validate; every kind of bad
//! input gets an error that names the input.

use std::path::{Path, PathBuf};

use coloc_workloads::scenario::{DeviceLimits, PartitionKind};
use coloc_workloads::suite::Suite;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn parse(text: &str) -> Result<Suite, String> {
    Suite::parse(text, Path::new("test.toml"), &DeviceLimits::h200()).map_err(|e| e.to_string())
}

/// Parses and validates; the error text of whichever step fails.
fn check(text: &str) -> Result<usize, String> {
    let suite = parse(text)?;
    suite.validate(&DeviceLimits::h200()).map(|c| c.scenarios).map_err(|e| e.to_string())
}

const PAIR: &str = r#"
name = "t"
[[sweep]]
name = "s"
models = ["resnet50", "bert_base", "vit_b16"]
degree = 2
batch = [1, 8]
partition = ["time_sliced", "streams", "green", "mps"]
load = [0.3, 0.6]
"#;

#[test]
fn the_shipped_suites_validate() {
    let limits = DeviceLimits::h200();
    let smoke = Suite::load(&repo("suites/smoke.toml"), &limits).unwrap();
    let check = smoke.validate(&limits).unwrap();
    assert_eq!(check.scenarios, 9);
    assert!(check.reference_runs >= 2, "the smoke suite measures drift too");
    assert!(check.estimated_seconds < 60.0, "smoke must stay under a minute: {}", check.estimated_seconds);
    let default = Suite::load(&repo("suites/default.toml"), &limits).unwrap();
    let check = default.validate(&limits).unwrap();
    // one call to the lent GPU runs at most ten minutes: the default suite must fit in one
    assert!((5.0 * 60.0..9.5 * 60.0).contains(&check.estimated_seconds), "{}", check.estimated_seconds);
    for p in PartitionKind::ALL {
        assert!(check.by_partition.iter().any(|(k, n)| *k == p && *n >= 3), "default suite lacks {p:?}");
    }
    assert!(default.scenarios.iter().any(|s| !s.aggressors.is_empty()), "no dynamic interference");
    assert!(default.scenarios.iter().any(|s| s.repetitions > 1), "no repeated runs");
    assert!(default.scenarios.iter().any(|s| s.tenants.len() == 3), "no triples");
}

#[test]
fn the_state_probe_follows_every_kind_of_run_with_the_reference() {
    // docs/h200.md: which run before it makes a one-stream run fast
    let limits = DeviceLimits::h200();
    let probe = Suite::load(&repo("suites/state-probe.toml"), &limits).unwrap();
    let runs = coloc_workloads::order::plan_runs(&probe.scenarios, &[], probe.order_seed, probe.reference_every);
    for p in PartitionKind::ALL {
        let at: Vec<usize> = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.scenario.partition == p && !r.key().contains("reference"))
            .map(|(i, _)| i)
            .collect();
        let wanted = [
            PartitionKind::TimeSliced,
            PartitionKind::Streams,
            PartitionKind::Green,
            PartitionKind::Mps,
            PartitionKind::Processes,
        ];
        assert_eq!(at.is_empty(), !wanted.contains(&p), "{p:?}");
        for i in at {
            assert!(
                runs.get(i + 1).is_some_and(|r| r.key().contains("reference")),
                "{p:?} at {i} has no reference after it"
            );
        }
    }
    assert!(probe.validate(&limits).unwrap().estimated_seconds < 120.0);
}

#[test]
fn the_training_suite_holds_what_the_predictor_splits_need() {
    use std::collections::BTreeSet;
    let limits = DeviceLimits::h200();
    let train = Suite::load(&repo("suites/train.toml"), &limits).unwrap();
    let check = train.validate(&limits).unwrap();
    // three calls of ten minutes on one lease of the GPU machine
    assert!(check.estimated_seconds < 27.0 * 60.0, "{}", check.estimated_seconds);
    let mixes = |n: usize| -> BTreeSet<Vec<String>> {
        train
            .measured()
            .filter(|s| s.tenants.len() == n && s.aggressors.is_empty())
            .map(|s| {
                let mut m: Vec<String> = s.tenants.iter().map(|t| t.model.clone()).collect();
                m.sort();
                m
            })
            .collect()
    };
    assert_eq!(mixes(2).len(), 15, "every pair of the six models");
    assert_eq!(mixes(3).len(), 20, "every triple");
    for p in [PartitionKind::Green, PartitionKind::Mps] {
        assert!(train.measured().any(|s| s.partition == p && s.tenants.len() == 2), "{p:?}");
    }
    let sizes: BTreeSet<usize> =
        train.measured().flat_map(|s| s.tenants.iter().map(|t| t.batching.max_batch())).collect();
    assert!([1, 8, 16].iter().all(|b| sizes.contains(b)), "{sizes:?}");
    assert!(train.measured().any(|s| s.tenants.len() == 2 && s.tenants[0].batching != s.tenants[1].batching));
    assert!(train.measured().any(|s| s.repetitions == 3), "no noise repeats");
    assert!(train.measured().filter(|s| s.aggressors.len() >= 3 && s.duration_s >= 15.0).count() >= 3);
    assert!(train.measured().all(|s| s.kernel_sample == 0.1));
    let forecast = Suite::load(&repo("suites/forecast.toml"), &limits).unwrap();
    forecast.validate(&limits).unwrap();
}

#[test]
fn a_sweep_expands_into_the_product_of_its_axes() {
    // 3 pairs x 2 batch sizes x 4 partitions x 2 loads
    let suite = parse(PAIR).unwrap();
    assert_eq!(suite.measured().count(), 48);
    let names: Vec<&str> = suite.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"s/resnet50+vit_b16/b8/green-56_56/load0.6"), "{names:?}");
    let with_replacement = PAIR.replace("degree = 2", "degree = 2\nwith_replacement = true");
    assert_eq!(parse(&with_replacement).unwrap().measured().count(), 6 * 2 * 4 * 2);
    assert_eq!(check(PAIR).unwrap(), 48);
}

#[test]
fn a_batch_mix_gives_each_tenant_its_own_batch_size() {
    let mixed = PAIR.replace("batch = [1, 8]", "batch = [8]\nbatch_mix = [[1, 16], [16, 1]]");
    let suite = parse(&mixed).unwrap();
    // 3 pairs x (one shared size + two mixes) x 4 partitions x 2 loads
    assert_eq!(suite.measured().count(), 3 * 3 * 4 * 2);
    let s = suite.scenarios.iter().find(|s| s.name == "s/resnet50+bert_base/b1,b16/green-56_56/load0.3").unwrap();
    let sizes: Vec<usize> = s.tenants.iter().map(|t| t.batching.max_batch()).collect();
    assert_eq!(sizes, [1, 16]);
    let err = parse(&PAIR.replace("batch = [1, 8]", "batch_mix = [[1, 16, 8]]")).unwrap_err();
    assert!(err.contains("batch_mix [1, 16, 8] gives 3 batch sizes for the 2 tenants"), "{err}");
}

#[test]
fn the_kernel_sample_is_inherited_and_checked() {
    let suite = parse(&PAIR.replace("name = \"t\"", "name = \"t\"\n[defaults]\nkernel_sample = 0.1")).unwrap();
    assert!(suite.scenarios.iter().all(|s| s.kernel_sample == 0.1));
    assert!(parse(PAIR).unwrap().scenarios.iter().all(|s| s.kernel_sample == 0.3));
    let err = check(&PAIR.replace("load = [0.3, 0.6]", "load = [0.3, 0.6]\nkernel_sample = 0.0")).unwrap_err();
    assert!(err.contains("kernel_sample = 0 must be in (0, 1]"), "{err}");
}

#[test]
fn a_file_that_does_not_parse_names_file_line_and_column() {
    let err = parse("name = \"t\"\n[[sweep]\nname = \"s\"\n").unwrap_err();
    assert!(err.starts_with("test.toml:2:"), "{err}");
}

#[test]
fn an_unknown_model_is_named_with_the_nearest_valid_names() {
    let err = check(&PAIR.replace("\"bert_base\"", "\"bert_bse\"")).unwrap_err();
    assert!(err.contains("unknown model `bert_bse`") && err.contains("bert_base"), "{err}");
}

#[test]
fn an_unknown_field_or_kernel_is_named_with_the_nearest_valid_name() {
    let err = parse(&PAIR.replace("degree = 2", "degre = 2")).unwrap_err();
    assert!(err.contains("unknown field `degre`") && err.contains("did you mean `degree`"), "{err}");
    let aggressor = r#"
name = "t"
[[scenario]]
name = "x"
partition = "time_sliced"
[[scenario.tenant]]
model = "tiny"
rate = 10.0
[[scenario.aggressor]]
stressor = "strem"
start_s = 1.0
stop_s = 2.0
"#;
    let err = parse(aggressor).unwrap_err();
    assert!(err.contains("unknown variant `strem`") && err.contains("did you mean `stream`"), "{err}");
    let err = parse(&PAIR.replace("\"mps\"]", "\"mpss\"]")).unwrap_err();
    assert!(err.contains("unknown partition `mpss`") && err.contains("`mps`"), "{err}");
}

#[test]
fn partitions_beyond_the_device_are_rejected() {
    let too_many_sms = PAIR.replace("\"green\"", "\"green:100,100\"");
    let err = check(&too_many_sms).unwrap_err();
    assert!(err.contains("26 groups") && err.contains("15 groups"), "{err}");
    let one_too_big = PAIR.replace("\"green\"", "\"green:128,8\"");
    assert!(check(&one_too_big).unwrap_err().contains("asks for 128 SMs"));
    let pct = PAIR.replace("\"mps\"", "\"mps:150,50\"");
    assert!(check(&pct).unwrap_err().contains("mps_percent = 150"));
    let prio = PAIR.replace("\"streams\"", "\"streams:-9,0\"");
    assert!(check(&prio).unwrap_err().contains("priority -9"));
}

#[test]
fn a_tenant_without_a_partition_share_is_rejected() {
    let text = r#"
name = "t"
[[scenario]]
name = "x"
partition = "green"
[[scenario.tenant]]
model = "resnet50"
rate = 100.0
sms = 64
[[scenario.tenant]]
model = "bert_base"
rate = 100.0
"#;
    let err = check(text).unwrap_err();
    assert!(err.contains("`bert_base` has no `sms`"), "{err}");
    let stray = text.replace("sms = 64", "sms = 64\nmps_percent = 50");
    assert!(check(&stray).unwrap_err().contains("`mps_percent`"));
}

#[test]
fn a_negative_rate_is_rejected() {
    let err = check(&PAIR.replace("load = [0.3, 0.6]", "rate = [-5.0]")).unwrap_err();
    assert!(err.contains("rate = -5"), "{err}");
    let err = check(&PAIR.replace("load = [0.3, 0.6]", "load = [0.0]")).unwrap_err();
    assert!(err.contains("load = 0"), "{err}");
}

#[test]
fn a_batch_larger_than_the_model_allows_is_rejected() {
    let err = check(&PAIR.replace("batch = [1, 8]", "batch = [512]")).unwrap_err();
    assert!(err.contains("batch 512") && err.contains("max_batch"), "{err}");
}

#[test]
fn a_trace_with_non_monotone_times_is_rejected_with_its_line() {
    let dir = std::env::temp_dir().join(format!("coloc-suite-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.txt"), "timestamp\n0.0\n0.5\n0.4\n").unwrap();
    let text = r#"
name = "t"
[[scenario]]
name = "x"
partition = "time_sliced"
[[scenario.tenant]]
model = "tiny"
arrival = { kind = "trace", path = "bad.txt", format = "timestamps" }
"#;
    let suite = Suite::parse(text, &dir.join("suite.toml"), &DeviceLimits::h200()).unwrap();
    let scenario = &suite.scenarios[0];
    let err = scenario.tenants[0].arrival.schedule(1.0, 1, 1, &suite.base_dir, "tenant tiny").unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(err.contains("bad.txt:4:"), "{err}");
}

#[test]
fn aggressors_must_run_inside_the_window_and_need_a_share() {
    let text = r#"
name = "t"
[[scenario]]
name = "x"
partition = "green"
duration_s = 5.0
[[scenario.tenant]]
model = "tiny"
rate = 10.0
sms = 64
[[scenario.aggressor]]
stressor = "fma"
start_s = 4.0
stop_s = 6.0
sms = 32
"#;
    assert!(check(text).unwrap_err().contains("inside the measured window"));
    let no_share = text.replace("stop_s = 6.0\nsms = 32", "stop_s = 5.0");
    assert!(check(&no_share).unwrap_err().contains("`aggressor1` has no `sms`"));
    let ok = text.replace("stop_s = 6.0", "stop_s = 5.0");
    assert_eq!(check(&ok).unwrap(), 1);
}

#[test]
fn scenarios_that_do_not_fit_in_memory_are_rejected() {
    let text = PAIR
        .replace("models = [\"resnet50\", \"bert_base\", \"vit_b16\"]\ndegree = 2", "models = [\"vgg16\"]\ndegree = 1")
        .replace("batch = [1, 8]", "batch = [128]")
        .replace("load = [0.3, 0.6]", "rate = [10.0]");
    // VGG-16 at batch 128 needs about 14 GiB: fits; a quadruple of it at 128 does not fit in 4 GiB
    let small = DeviceLimits { memory_bytes: 4 << 30, ..DeviceLimits::h200() };
    let suite = Suite::parse(&text, Path::new("t.toml"), &small).unwrap();
    let err = suite.validate(&small).unwrap_err().to_string();
    assert!(err.contains("GiB of device memory"), "{err}");
}
