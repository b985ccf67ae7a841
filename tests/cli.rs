//! The `coloc` binary: commands that need no GPU work anywhere; commands that need one fail
//! with exactly one clear line when none is usable. `CUDA_VISIBLE_DEVICES=""` hides every GPU,
//! so these hold on GPU machines as well as on the CPU-only CI.

use std::process::Command;

fn coloc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coloc"))
        .args(args)
        .env("CUDA_VISIBLE_DEVICES", "")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("coloc runs")
}

#[test]
fn gpu_commands_without_a_usable_gpu_fail_with_one_line() {
    for args in [
        vec!["devices"],
        vec!["kernels", "check"],
        vec!["kernels", "bench", "--out", "target/never-written"],
        vec!["partitions", "scaling"],
        vec!["partitions", "priority"],
        vec!["partitions", "fusion", "--tenants", "1,2"],
        vec!["pipeline", "resnet50", "--measure", "target/never-written"],
        vec!["models", "run", "resnet50", "--first", "ceilings-gemms,nvml,overhead,profile"],
    ] {
        let out = coloc(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded without a GPU");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?} printed more than one line:\n{stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains("NVIDIA driver") || stderr.contains("no CUDA device"),
            "{args:?} does not say why: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

#[test]
fn kernels_list_needs_no_gpu_and_names_every_kernel() {
    let out = coloc(&["kernels", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in ["bias_act_bf16", "attention_decode_f32_d128", "stress_chase", "tensor_peak_tf32", "im2col_f32"] {
        assert!(stdout.contains(name), "kernels list lacks {name}");
    }
    assert!(stdout.contains("gemm bf16 m=8192 n=8192 k=8192"), "bench shapes missing");
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let out = coloc(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}

#[test]
fn evaluate_writes_the_leaderboard_and_every_prediction_and_fit_saves_a_predictor() {
    let dir = std::env::temp_dir().join(format!("coloc-evaluate-{}", std::process::id()));
    let out = coloc(&[
        "evaluate",
        "data/h200",
        "--quick",
        "--counters",
        "data/h200-counters",
        "--split",
        "random",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in ["solo at share", "online RLS, coarse", "gpulet linear (L2, DRAM)", "iGniter analytic", "noise floor"] {
        assert!(stdout.contains(name), "the leaderboard lacks {name}:\n{stdout}");
    }
    let csv = std::fs::read_to_string(dir.join("leaderboard.csv")).unwrap();
    assert!(csv.starts_with("split,predictor,folds,train,test,mape,"), "{csv}");
    // seven predictors on one split (the floor, two RLS, SGD, two gpulet, iGniter), a header above
    assert_eq!(csv.lines().count(), 1 + 7, "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("leaderboard.json")).unwrap()).unwrap();
    let tested: u64 = json["entries"].as_array().unwrap().iter().map(|e| e["scores"]["n"].as_u64().unwrap()).sum();
    assert!(dir.join("predictions.parquet").metadata().unwrap().len() > 0);
    assert!(tested > 100_000, "{tested}");

    // a counter dataset that is not one is named
    let bad = coloc(&["evaluate", "data/h200", "--quick", "--counters", "suites"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("suites"), "{}", String::from_utf8_lossy(&bad.stderr));

    let saved = dir.join("rls.json");
    let fit = coloc(&["fit", "data/h200", "--predictor", "online-coarse", "--out", saved.to_str().unwrap()]);
    assert!(fit.status.success(), "{}", String::from_utf8_lossy(&fit.stderr));
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(saved["name"], "online RLS, coarse");
    assert_eq!(saved["manifest_sha256"].as_str().unwrap().len(), 64);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The README's main job, on a slice of the training dataset: every predictor on every split.
#[test]
fn evaluate_on_a_slice_of_the_training_dataset_runs_every_predictor_on_every_split() {
    let out = coloc(&[
        "evaluate",
        "data/h200-train",
        "--slice",
        "20",
        "--counters",
        "data/h200-counters",
        "--counters",
        "data/h200-counters-b16",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for split in [
        "random 75/25",
        "leave one model out",
        "leave one mix out",
        "pairs -> triples",
        "green -> mps",
        "mps -> green",
        "low load -> high load",
        "prequential",
        "undisturbed -> aggressor steps",
    ] {
        assert!(stdout.contains(&format!("split: {split}")), "no leaderboard for {split}:\n{stdout}");
    }
    for name in
        ["Abacus-style MLP", "gradient-boosted trees", "online RLS, per-kernel, Page-Hinkley", "gpulet linear + EWMA"]
    {
        assert!(stdout.contains(name), "the leaderboard lacks {name}:\n{stdout}");
    }
}

/// A serving workload planned and simulated, no GPU: Clockwork's plan and Abacus's simulate and
/// are written as suites naming their schedulers (Abacus's with the predictor it asks).
#[test]
fn schedule_simulates_runtime_schedulers_and_writes_only_what_the_harness_runs() {
    let dir = std::env::temp_dir().join(format!("coloc-cli-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truth = dir.join("solo.json");
    let fit = coloc(&["fit", "data/h200", "--predictor", "solo-at-share", "--out", truth.to_str().unwrap()]);
    assert!(fit.status.success(), "{}", String::from_utf8_lossy(&fit.stderr));
    let suite = dir.join("plan.toml");
    let args = |policy: &'static str| -> Vec<String> {
        ["schedule", "serving/mixed.toml", "--profiles", "data/h200-serve-profiles", "--truth"]
            .iter()
            .map(|a| a.to_string())
            .chain([truth.display().to_string(), "--policy".into(), policy.into(), "--scale".into(), "0.5".into()])
            .chain(["--predictor".into(), truth.display().to_string()])
            .chain(["--simulate".into(), "--suite".into(), suite.display().to_string()])
            .collect()
    };
    let run = |a: Vec<String>| coloc(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let clockwork = run(args("clockwork"));
    let out = String::from_utf8_lossy(&clockwork.stdout);
    assert!(clockwork.status.success(), "{}", String::from_utf8_lossy(&clockwork.stderr));
    assert!(out.contains("clockwork") && out.contains("time_sliced") && out.contains("SLO met"), "{out}");
    let written = std::fs::read_to_string(&suite).unwrap();
    assert!(written.contains("scheduler = \"clockwork\"") && written.contains("policy = \"dynamic\""), "{written}");
    std::fs::remove_file(&suite).unwrap();
    // space-time's plan is first come first served's with its scheduler named, no predictor
    let space_time = run(args("space-time"));
    assert!(space_time.status.success(), "{}", String::from_utf8_lossy(&space_time.stderr));
    let written = std::fs::read_to_string(&suite).unwrap();
    assert!(
        written.contains("partition = \"streams\"\n")
            && written.contains("scheduler = \"space_time\"")
            && !written.contains("scheduler_predictor"),
        "{written}"
    );
    std::fs::remove_file(&suite).unwrap();
    // Abacus's plan names its scheduler and the predictor it asks, from the suite's directory
    let abacus = run(args("abacus"));
    assert!(abacus.status.success(), "{}", String::from_utf8_lossy(&abacus.stderr));
    let written = std::fs::read_to_string(&suite).unwrap();
    assert!(
        written.contains("partition = \"streams\"")
            && written.contains("scheduler = \"least_headroom\"\nscheduler_predictor = \"solo.json\""),
        "{written}"
    );
    // and its forecast asks that predictor, as the harness will
    let forecast = coloc(&[
        "predict",
        suite.to_str().unwrap(),
        "--predictor",
        truth.to_str().unwrap(),
        "--profiles",
        "data/h200-serve-profiles",
    ]);
    let out = String::from_utf8_lossy(&forecast.stdout);
    assert!(
        forecast.status.success() && out.contains("abacus+solo"),
        "{out}{}",
        String::from_utf8_lossy(&forecast.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pipeline_compares_odin_with_least_loaded_and_static_and_names_a_bad_share() {
    let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/data/h200-forecast");
    let json = std::env::temp_dir().join(format!("coloc-pipeline-{}.json", std::process::id()));
    let out = coloc(&[
        "pipeline",
        "resnet50",
        "--profiles",
        profiles,
        "--duration-s",
        "3",
        "--interference",
        "1:1-2:2.09",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for policy in ["static", "lls", "odin"] {
        assert!(stdout.lines().any(|l| l.starts_with(policy)), "{policy} missing:\n{stdout}");
    }
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let outcomes = doc["outcomes"].as_array().unwrap();
    let within = |p: &str| outcomes.iter().find(|o| o["policy"] == p).unwrap()["slo_attainment"].as_f64().unwrap();
    assert!(within("odin") > within("static"), "{doc}");
    std::fs::remove_file(&json).unwrap();
    let out = coloc(&["pipeline", "resnet50", "--profiles", profiles, "--share", "green41"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("resnet50 b8 at green41") && stderr.contains("green40"),
        "{stderr}"
    );
}

#[test]
fn every_committed_suite_validates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for dir in ["suites", "serving"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // serving/ also holds workloads for `coloc schedule` (their models, no scenarios)
            if path.extension().is_none_or(|e| e != "toml") || text.contains("[[model]]") {
                continue;
            }
            let out = coloc(&["suite", "validate", path.to_str().unwrap()]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{}: {}{stdout}", path.display(), String::from_utf8_lossy(&out.stderr));
            assert!(stdout.contains(": OK,"), "{}: {stdout}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} suites found");
}

#[test]
fn models_fusable_needs_no_gpu_and_finds_the_transformers_shared_products() {
    let out = coloc(&["models", "fusable", "bert_base", "vit_b16", "resnet50", "--shapes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("bert_base") && l.contains("vit_b16")).expect("the pair");
    assert!(line.contains("48 of 49"), "{line}");
    assert!(stdout.contains("N 3072 K 768 Bf16: 12 pairs, M [128] / M [197]"), "{stdout}");
    let cnn = stdout.lines().find(|l| l.starts_with("bert_base") && l.contains("resnet50"));
    let cnn = cnn.or_else(|| stdout.lines().find(|l| l.starts_with("resnet50") && l.contains("bert_base")));
    assert!(cnn.expect("the CNN pair").contains("0.0%"), "{stdout}");
    let e = coloc(&["models", "fusable", "bert_base"]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("at least two models"));
}
