//! The arrival processes against their distributions, the trace readers against fixtures and
//! broken files, and the parameters against bad values.

use std::path::PathBuf;

use super::*;

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
}

const BUSIEST: &str = "a1b2c3f7e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6";
const BURST: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const ZEROS: &str = "0e5d7f2a9c4b1e8d3f6a0c7e2b9d4f1a8c5e0b7d2f9a4c1e6b3d8f0a5c2e7b4d";

fn open(process: &ArrivalProcess, duration_s: f64, min_queries: usize, seed: u64) -> Vec<u64> {
    match process.schedule(duration_s, min_queries, seed, &traces_dir(), "test") {
        Ok(Schedule::Open { arrivals_ns }) => arrivals_ns,
        other => panic!("expected an open schedule, got {other:?}"),
    }
}

fn closed(process: &ArrivalProcess, duration_s: f64, min_queries: usize, seed: u64) -> Vec<Vec<u64>> {
    match process.schedule(duration_s, min_queries, seed, &traces_dir(), "test") {
        Ok(Schedule::Closed { think_ns, .. }) => think_ns,
        other => panic!("expected a closed schedule, got {other:?}"),
    }
}

/// Inter-arrival times in seconds, the first measured from 0.
fn gaps_s(arrivals_ns: &[u64]) -> Vec<f64> {
    let mut previous = 0;
    arrivals_ns
        .iter()
        .map(|&t| {
            let gap = (t - previous) as f64 * 1e-9;
            previous = t;
            gap
        })
        .collect()
}

fn mean_cv(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt() / mean)
}

fn count_in(arrivals_ns: &[u64], from_s: f64, to_s: f64) -> usize {
    arrivals_ns.iter().filter(|&&t| t as f64 >= from_s * 1e9 && (t as f64) < to_s * 1e9).count()
}

fn trace(spec: TraceSpec) -> ArrivalProcess {
    ArrivalProcess::Trace(spec)
}

fn azure(function: Option<&str>, target_rate: Option<f64>, minute_s: f64, start_minute: usize) -> ArrivalProcess {
    trace(TraceSpec {
        function: function.map(str::to_string),
        target_rate,
        minute_s,
        start_minute,
        ..TraceSpec::new("azure_sample.csv", TraceFormat::AzureFunctions)
    })
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("coloc-arrival-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("temp dir is writable");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn assert_within(what: &str, value: f64, expected: f64, tolerance: f64) {
    let error = (value - expected).abs() / expected;
    assert!(
        error <= tolerance,
        "{what}: {value} vs {expected}, off by {:.2}% > {:.2}%",
        error * 100.0,
        tolerance * 100.0
    );
}

#[test]
fn poisson_inter_arrivals_have_the_requested_mean_and_unit_cv() {
    let arrivals = open(&ArrivalProcess::Poisson { rate: 200.0 }, 100.0, 0, 1);
    assert!(arrivals.len() > 19_000, "{} arrivals", arrivals.len());
    let (mean, cv) = mean_cv(&gaps_s(&arrivals));
    assert_within("mean gap", mean, 1.0 / 200.0, 0.03);
    assert_within("cv", cv, 1.0, 0.05);
}

#[test]
fn poisson_inter_arrivals_pass_a_kolmogorov_smirnov_test_against_the_exponential() {
    let rate = 200.0;
    let mut gaps = gaps_s(&open(&ArrivalProcess::Poisson { rate }, 100.0, 0, 2));
    gaps.sort_by(f64::total_cmp);
    let n = gaps.len() as f64;
    let d = gaps
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let cdf = 1.0 - (-rate * x).exp();
            (cdf - i as f64 / n).abs().max(((i + 1) as f64 / n - cdf).abs())
        })
        .fold(0.0, f64::max);
    let critical = 1.63 / n.sqrt();
    assert!(d < critical, "KS statistic {d} >= {critical} over {n} gaps");
}

#[test]
fn uniform_inter_arrivals_stay_within_their_bounds_and_have_the_requested_mean() {
    let (rate, spread) = (100.0, 0.4);
    let gaps = gaps_s(&open(&ArrivalProcess::Uniform { rate, spread }, 200.0, 0, 3));
    let (low, high) = ((1.0 - spread) / rate, (1.0 + spread) / rate);
    // One nanosecond of slack: arrival times are rounded to whole nanoseconds.
    assert!(gaps.iter().all(|g| (low - 1e-9..=high + 1e-9).contains(g)), "a gap outside [{low}, {high}]");
    let (mean, _) = mean_cv(&gaps);
    assert_within("mean gap", mean, 1.0 / rate, 0.02);
    let full = gaps_s(&open(&ArrivalProcess::Uniform { rate, spread: 1.0 }, 200.0, 0, 3));
    assert!(full.iter().all(|g| *g <= 2.0 / rate + 1e-9));
    assert_within("mean gap with spread 1", mean_cv(&full).0, 1.0 / rate, 0.02);
}

#[test]
fn uniform_with_zero_spread_is_a_constant_rate() {
    let arrivals = open(&ArrivalProcess::Uniform { rate: 4.0, spread: 0.0 }, 1.0, 0, 4);
    assert_eq!(arrivals, vec![250_000_000, 500_000_000, 750_000_000]);
}

#[test]
fn gamma_inter_arrivals_have_the_requested_mean_and_cv() {
    for (cv, seed) in [(0.5, 5), (3.0, 6)] {
        let process = ArrivalProcess::Gamma { rate: 100.0, cv };
        let arrivals = open(&process, 0.0, 100_000, seed);
        assert_eq!(arrivals.len(), 100_000);
        let (mean, measured_cv) = mean_cv(&gaps_s(&arrivals));
        assert_within(&format!("mean gap for cv {cv}"), mean, 0.01, 0.05);
        assert_within(&format!("cv for cv {cv}"), measured_cv, cv, 0.05);
    }
}

#[test]
fn on_off_sends_nothing_during_off_periods_and_rate_on_during_on_periods() {
    let process = ArrivalProcess::OnOff { rate_on: 1000.0, on_s: 0.5, off_s: 1.5, rate_off: 0.0 };
    let arrivals = open(&process, 100.0, 0, 7);
    assert!(arrivals.iter().all(|t| t % 2_000_000_000 <= 500_000_000), "an arrival during an off period");
    // 50 on periods of 0.5 s.
    assert_within("rate during on periods", arrivals.len() as f64 / 25.0, 1000.0, 0.05);
}

#[test]
fn on_off_with_an_off_rate_sends_at_that_rate_during_off_periods() {
    let process = ArrivalProcess::OnOff { rate_on: 1000.0, on_s: 1.0, off_s: 1.0, rate_off: 200.0 };
    let arrivals = open(&process, 100.0, 0, 8);
    let off = arrivals.iter().filter(|&&t| t % 2_000_000_000 >= 1_000_000_000).count();
    assert_within("rate during off periods", off as f64 / 50.0, 200.0, 0.05);
    assert_within("rate during on periods", (arrivals.len() - off) as f64 / 50.0, 1000.0, 0.05);
}

#[test]
fn nominal_rate_is_the_long_run_mean_and_none_for_closed_loops_and_unscaled_traces() {
    assert_eq!(ArrivalProcess::Poisson { rate: 5.0 }.nominal_rate(), Some(5.0));
    let on_off = ArrivalProcess::OnOff { rate_on: 100.0, on_s: 1.0, off_s: 3.0, rate_off: 20.0 };
    assert_eq!(on_off.nominal_rate(), Some(40.0));
    let closed = ArrivalProcess::ClosedLoop { clients: 2, think_ms: 1.0, think: ThinkTime::Fixed };
    assert_eq!(closed.nominal_rate(), None);
    assert_eq!(azure(None, None, 60.0, 0).nominal_rate(), None);
    assert_eq!(azure(None, Some(50.0), 60.0, 0).nominal_rate(), Some(50.0));
}

#[test]
fn closed_loop_exponential_think_times_have_the_requested_mean_per_client() {
    let process = ArrivalProcess::ClosedLoop { clients: 4, think_ms: 10.0, think: ThinkTime::Exponential };
    let per_client = closed(&process, 200.0, 0, 9);
    assert_eq!(per_client.len(), 4);
    for (client, list) in per_client.iter().enumerate() {
        let ms: Vec<f64> = list.iter().map(|&t| t as f64 * 1e-6).collect();
        assert_within(&format!("mean think time of client {client}"), mean_cv(&ms).0, 10.0, 0.03);
    }
    assert_ne!(per_client[0], per_client[1], "clients must draw independent think times");
}

#[test]
fn closed_loop_fixed_think_times_are_all_equal() {
    let process = ArrivalProcess::ClosedLoop { clients: 2, think_ms: 2.5, think: ThinkTime::Fixed };
    for list in closed(&process, 1.0, 0, 10) {
        assert!(!list.is_empty());
        assert!(list.iter().all(|&t| t == 2_500_000));
    }
}

#[test]
fn closed_loop_think_times_cover_min_queries_and_the_duration() {
    let process = ArrivalProcess::ClosedLoop { clients: 3, think_ms: 100.0, think: ThinkTime::Exponential };
    for (duration_s, min_queries) in [(10.0, 1000), (10.0, 10), (0.0, 0)] {
        for list in closed(&process, duration_s, min_queries, 11) {
            assert!(list.len() > min_queries.div_ceil(3), "{} think times for min_queries {min_queries}", list.len());
            let sum_s = list.iter().sum::<u64>() as f64 * 1e-9;
            assert!(sum_s >= duration_s + 1.0, "think times sum to {sum_s} s for duration {duration_s} s");
        }
    }
    let no_think = ArrivalProcess::ClosedLoop { clients: 2, think_ms: 0.0, think: ThinkTime::Exponential };
    let schedule = no_think.schedule(10.0, 7, 11, &traces_dir(), "test").expect("valid");
    assert_eq!(schedule, Schedule::Closed { clients: 2, think_ns: vec![vec![0; 5]; 2] });
    assert_eq!(schedule.think_time_ns(1, 1_000), Some(0));
    assert_eq!(schedule.think_time_ns(2, 0), None);
}

#[test]
fn min_queries_extends_an_open_schedule_past_the_duration() {
    let arrivals = open(&ArrivalProcess::Poisson { rate: 10.0 }, 1.0, 500, 12);
    assert_eq!(arrivals.len(), 500);
    assert!(*arrivals.last().expect("500 arrivals") > 1_000_000_000);
}

#[test]
fn duration_extends_an_open_schedule_past_min_queries() {
    // A rate of 128/s keeps every arrival time exact in binary: k/128 s for k = 1, 2, ...
    let arrivals = open(&ArrivalProcess::Uniform { rate: 128.0, spread: 0.0 }, 10.0, 5, 13);
    // All arrivals before the 10 s duration: k = 1 to 1279.
    assert_eq!(arrivals.len(), 1279);
    assert_eq!(arrivals.last(), Some(&9_992_187_500));
}

#[test]
fn the_same_seed_gives_the_same_schedule_and_another_seed_a_different_one() {
    let processes = [
        ArrivalProcess::Poisson { rate: 50.0 },
        ArrivalProcess::Uniform { rate: 50.0, spread: 0.5 },
        ArrivalProcess::Gamma { rate: 50.0, cv: 2.0 },
        ArrivalProcess::OnOff { rate_on: 100.0, on_s: 0.5, off_s: 0.5, rate_off: 0.0 },
        ArrivalProcess::ClosedLoop { clients: 3, think_ms: 5.0, think: ThinkTime::Exponential },
        azure(None, Some(50.0), 1.0, 0),
    ];
    for process in &processes {
        let run = |seed| process.schedule(5.0, 10, seed, &traces_dir(), "test").expect("valid");
        assert_eq!(run(42), run(42), "{process:?}");
        assert_ne!(run(42), run(43), "{process:?}");
    }
}

#[test]
fn timestamps_fixture_is_replayed_relative_to_its_first_time() {
    let values = load_timestamps(traces_dir().join("timestamps_sample.txt")).expect("fixture parses");
    assert_eq!(values.len(), 50);
    assert_eq!(values[0], 1000.0);
    let process = trace(TraceSpec::new("timestamps_sample.txt", TraceFormat::Timestamps));
    let arrivals = open(&process, 10.0, 0, 14);
    assert_eq!(arrivals.len(), 50);
    assert_eq!(&arrivals[..3], &[0, 13_000_000, 20_000_000]);
    assert_eq!(arrivals.last(), Some(&632_000_000));
    // A duration shorter than the trace cuts it: arrivals at 0, 13 and 20 ms are before 21 ms.
    assert_eq!(open(&process, 0.021, 0, 14).len(), 3);
}

#[test]
fn timestamps_target_rate_rescales_the_mean_rate_exactly() {
    let spec =
        TraceSpec { target_rate: Some(100.0), ..TraceSpec::new("timestamps_sample.txt", TraceFormat::Timestamps) };
    let arrivals = open(&trace(spec), 10.0, 0, 15);
    assert_eq!(arrivals.len(), 50);
    // 49 gaps with a mean of 10 ms.
    let last = *arrivals.last().expect("50 arrivals");
    assert!(last.abs_diff(490_000_000) <= 1, "last arrival at {last} ns");
    // One factor for all gaps: the second gap stays 7/13 of the first.
    let ratio = (arrivals[2] - arrivals[1]) as f64 / arrivals[1] as f64;
    assert!((ratio - 7.0 / 13.0).abs() < 1e-6, "ratio {ratio}");
}

#[test]
fn timestamps_trace_shorter_than_min_queries_ends_without_looping() {
    let process = trace(TraceSpec::new("timestamps_sample.txt", TraceFormat::Timestamps));
    assert_eq!(open(&process, 100.0, 1_000, 16).len(), 50);
}

#[test]
fn decreasing_timestamps_are_a_parse_error_naming_the_line_and_both_values() {
    let file = TempFile::new("decreasing.txt", "timestamp\n1.0\n2.5\n\n2.25\n");
    match load_timestamps(&file.0) {
        Err(e @ Error::Parse { line: 5, column: 1, .. }) => {
            let text = e.to_string();
            assert!(text.contains("2.25") && text.contains("2.5") && text.contains("line 5"), "{text}");
            assert!(text.contains("decreasing.txt"), "{text}");
        }
        other => panic!("expected a parse error on line 5, got {other:?}"),
    }
}

#[test]
fn a_non_numeric_timestamp_is_a_parse_error_with_line_and_column() {
    let file = TempFile::new("non-numeric.csv", "# comment\nid,time\n1, 0.5\n2,  0.7s\n");
    match load_timestamps(&file.0) {
        Err(Error::Parse { line, column, message, .. }) => {
            assert_eq!((line, column), (4, 5), "{message}");
            assert!(message.contains("0.7s"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn csv_timestamps_use_the_named_column_and_milliseconds_convert() {
    let file = TempFile::new("columns.csv", "request,timestamp,model\n1,2000,a\n2,2250,b\n3,2250,c\n");
    assert_eq!(load_timestamps(&file.0).expect("parses"), vec![2000.0, 2250.0, 2250.0]);
    let spec = TraceSpec { unit: TimeUnit::Ms, ..TraceSpec::new(&file.0, TraceFormat::Timestamps) };
    // An absolute path ignores the base directory.
    assert_eq!(open(&trace(spec), 1.0, 0, 17), vec![0, 250_000_000, 250_000_000]);

    let no_time = TempFile::new("no-time.csv", "a,b\n1,2\n");
    let err = load_timestamps(&no_time.0).expect_err("no time column");
    assert!(matches!(err, Error::Parse { line: 1, .. }) && err.to_string().contains("`timestamp`"), "{err}");
    let no_header = TempFile::new("no-header.csv", "1,2\n");
    assert!(matches!(load_timestamps(&no_header.0), Err(Error::Parse { line: 1, .. })));
    let ragged = TempFile::new("ragged.csv", "time,x\n1,2\n3\n");
    assert!(matches!(load_timestamps(&ragged.0), Err(Error::Parse { line: 3, .. })));
}

#[test]
fn a_missing_trace_file_is_an_io_error_naming_the_resolved_path() {
    let process = trace(TraceSpec::new("no_such_trace.txt", TraceFormat::Timestamps));
    let err = process.schedule(1.0, 0, 0, &traces_dir(), "test").expect_err("missing file");
    assert!(matches!(&err, Error::Io { path, .. } if *path == traces_dir().join("no_such_trace.txt")), "{err}");
}

#[test]
fn azure_fixture_loads_three_functions_of_a_day_each() {
    let trace = load_azure(traces_dir().join("azure_sample.csv")).expect("fixture parses");
    assert_eq!(trace.functions.len(), 3);
    assert!(trace.functions.iter().all(|f| f.counts.len() == AZURE_MINUTES));
    let totals: Vec<u64> = trace.functions.iter().map(AzureFunction::total).collect();
    assert_eq!(totals, vec![0, 29_700, 43_200]);
    assert_eq!(trace.functions[1].trigger, "http");
}

#[test]
fn azure_default_function_is_the_busiest() {
    let trace = load_azure(traces_dir().join("azure_sample.csv")).expect("fixture parses");
    assert_eq!(trace.select(None).expect("a function").function, BUSIEST);
    // The busiest function is 30 per minute: 30 per second with minute_s = 1.
    let arrivals = open(&azure(None, None, 1.0, 0), 100.0, 0, 18);
    assert_within("rate of the default function", arrivals.len() as f64 / 100.0, 30.0, 0.05);
}

#[test]
fn azure_unique_prefix_selects_a_function_and_a_short_or_ambiguous_one_does_not() {
    let trace = load_azure(traces_dir().join("azure_sample.csv")).expect("fixture parses");
    assert_eq!(trace.select(Some("a1b2c3d")).expect("unique").function, BURST);
    assert_eq!(trace.select(Some(BURST)).expect("exact").function, BURST);
    let ambiguous = trace.select(Some("a1b2c3")).expect_err("two functions start with a1b2c3");
    assert!(ambiguous.to_string().contains("matches 2 rows"), "{ambiguous}");
    let short = trace.select(Some("0e5d7")).expect_err("5 characters are too few");
    assert!(short.to_string().contains("at least 6"), "{short}");
}

#[test]
fn azure_unknown_function_is_an_unknown_error_with_the_nearest_hash() {
    let trace = load_azure(traces_dir().join("azure_sample.csv")).expect("fixture parses");
    match trace.select(Some("0e5d7f2b")) {
        Err(Error::Unknown { name, suggestions, .. }) => {
            assert_eq!(name, "0e5d7f2b");
            assert_eq!(suggestions, vec![ZEROS.to_string()]);
        }
        other => panic!("expected Error::Unknown, got {other:?}"),
    }
    let process = azure(Some("ffffffffff"), None, 60.0, 0);
    let err = process.schedule(1.0, 0, 0, &traces_dir(), "test").expect_err("unknown");
    assert!(err.to_string().starts_with("unknown trace function `ffffffffff`"), "{err}");
}

#[test]
fn azure_target_rate_is_reached_over_a_long_window() {
    // The bursty function over a whole day compressed to 144 s.
    let arrivals = open(&azure(Some(BURST), Some(200.0), 0.1, 0), 144.0, 0, 19);
    assert_within("realised mean rate", arrivals.len() as f64 / 144.0, 200.0, 0.03);
}

#[test]
fn azure_target_rate_keeps_the_per_minute_shape() {
    // From minute 8 with 4 s per minute: minutes 10 to 14 (200 per minute) are seconds 8 to
    // 28, the other 15 minutes of the 80 s window have 20 per minute.
    let arrivals = open(&azure(Some(BURST), Some(1000.0), 4.0, 8), 80.0, 0, 20);
    assert_within("mean rate", arrivals.len() as f64 / 80.0, 1000.0, 0.03);
    let burst = count_in(&arrivals, 8.0, 28.0) as f64 / 20.0;
    let quiet = (arrivals.len() - count_in(&arrivals, 8.0, 28.0)) as f64 / 60.0;
    assert_within("burst / quiet rate", burst / quiet, 10.0, 0.05);
}

#[test]
fn azure_start_minute_wraps_around_the_end_of_the_day() {
    // From minute 1435 with 1 s per minute: minutes 1435..1439 and 0..9 are quiet (20 per
    // minute), the burst of minutes 10 to 14 arrives at seconds 15 to 20.
    let arrivals = open(&azure(Some(BURST), None, 1.0, 1435), 20.0, 0, 21);
    assert_within("quiet rate", count_in(&arrivals, 0.0, 15.0) as f64 / 15.0, 20.0, 0.15);
    assert_within("burst rate", count_in(&arrivals, 15.0, 20.0) as f64 / 5.0, 200.0, 0.1);
}

#[test]
fn azure_minute_s_compresses_time() {
    // 30 invocations per minute, a day in 720 s: about 43200 arrivals, about 60 per second.
    let arrivals = open(&azure(Some(BUSIEST), None, 0.5, 0), 720.0, 0, 22);
    assert_within("arrivals in a compressed day", arrivals.len() as f64, 43_200.0, 0.03);
    let real_time = open(&azure(Some(BUSIEST), None, 60.0, 0), 720.0, 0, 22);
    assert_within("arrivals in 12 real-time minutes", real_time.len() as f64, 360.0, 0.15);
}

#[test]
fn azure_all_zero_function_with_a_target_rate_is_rejected() {
    let err = azure(Some(ZEROS), Some(10.0), 1.0, 0).schedule(10.0, 0, 0, &traces_dir(), "tenant t").expect_err("zero");
    let text = err.to_string();
    assert!(
        text.contains("no invocations") && text.contains("target_rate = 10") && text.contains("tenant t"),
        "{text}"
    );
    // Without a target rate it is simply an empty schedule, even when queries are asked for.
    assert!(open(&azure(Some(ZEROS), None, 1.0, 0), 10.0, 100, 0).is_empty());
    // A function that is quiet only in the replayed minutes is rejected too.
    let file =
        TempFile::new("quiet.csv", &format!("{}\no,a,late,http,{}5\n", azure_header(), "0,".repeat(AZURE_MINUTES - 1)));
    let process = trace(TraceSpec { target_rate: Some(1.0), ..TraceSpec::new(&file.0, TraceFormat::AzureFunctions) });
    let err = process.schedule(60.0, 0, 0, &traces_dir(), "test").expect_err("quiet window");
    assert!(err.to_string().contains("1 minute(s) replayed from minute 0"), "{err}");
}

fn azure_header() -> String {
    let minutes: Vec<String> = (1..=AZURE_MINUTES).map(|m| m.to_string()).collect();
    format!("HashOwner,HashApp,HashFunction,Trigger,{}", minutes.join(","))
}

#[test]
fn azure_row_with_the_wrong_column_count_is_a_parse_error_naming_its_line() {
    let file = TempFile::new("short-row.csv", &format!("{}\n\no,a,f,http,{}1\n", azure_header(), "1,".repeat(99)));
    match load_azure(&file.0) {
        Err(Error::Parse { line, message, .. }) => {
            assert_eq!(line, 3, "{message}");
            assert!(message.contains("104 columns"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn azure_bad_header_or_count_is_a_parse_error_with_line_and_column() {
    let bad_header = azure_header().replace("HashFunction", "HashFunc");
    let file = TempFile::new("bad-header.csv", &format!("{bad_header}\n"));
    match load_azure(&file.0) {
        Err(Error::Parse { line, column, message, .. }) => {
            assert_eq!((line, column), (1, "HashOwner,HashApp,".len() + 1), "{message}");
            assert!(message.contains("`HashFunc`"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let prefix = "o,a,f,http,1,1,";
    let row = format!("{prefix}x,{}", vec!["1"; AZURE_MINUTES - 3].join(","));
    let file = TempFile::new("bad-count.csv", &format!("{}\n{row}\n", azure_header()));
    match load_azure(&file.0) {
        Err(Error::Parse { line, column, message, .. }) => {
            assert_eq!((line, column), (2, prefix.len() + 1), "{message}");
            assert!(message.contains("minute 3"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn invalid_parameters_are_rejected_naming_the_parameter_and_value() {
    let cases = [
        (ArrivalProcess::Poisson { rate: -1.0 }, "rate = -1"),
        (ArrivalProcess::Poisson { rate: 0.0 }, "rate = 0"),
        (ArrivalProcess::Poisson { rate: f64::NAN }, "rate = NaN"),
        (ArrivalProcess::Poisson { rate: f64::INFINITY }, "rate = inf"),
        (ArrivalProcess::Gamma { rate: 1.0, cv: 0.0 }, "cv = 0"),
        (ArrivalProcess::Gamma { rate: 1.0, cv: -2.0 }, "cv = -2"),
        (ArrivalProcess::Uniform { rate: 1.0, spread: 1.5 }, "spread = 1.5"),
        (ArrivalProcess::Uniform { rate: 1.0, spread: -0.1 }, "spread = -0.1"),
        (ArrivalProcess::OnOff { rate_on: 1.0, on_s: 0.0, off_s: 1.0, rate_off: 0.0 }, "on_s = 0"),
        (ArrivalProcess::OnOff { rate_on: 1.0, on_s: 1.0, off_s: -1.0, rate_off: 0.0 }, "off_s = -1"),
        (ArrivalProcess::ClosedLoop { clients: 0, think_ms: 1.0, think: ThinkTime::Fixed }, "clients = 0"),
        (ArrivalProcess::ClosedLoop { clients: 1, think_ms: -1.0, think: ThinkTime::Fixed }, "think_ms = -1"),
        (azure(None, None, 0.0, 0), "minute_s = 0"),
        (azure(None, None, 60.0, 1440), "start_minute = 1440"),
        (azure(None, Some(-5.0), 60.0, 0), "target_rate = -5"),
        (trace(TraceSpec { minute_s: 1.0, ..TraceSpec::new("t.txt", TraceFormat::Timestamps) }), "minute_s = 1"),
    ];
    for (process, expected) in cases {
        let err = process.validate("suite s.toml, tenant t").expect_err(expected);
        let text = err.to_string();
        assert!(text.starts_with("suite s.toml, tenant t: ") && text.contains(expected), "{text}");
        assert!(process.schedule(1.0, 1, 0, &traces_dir(), "ctx").is_err(), "{expected}");
    }
    let err = ArrivalProcess::Poisson { rate: 1.0 }.schedule(-1.0, 0, 0, &traces_dir(), "t").expect_err("duration");
    assert!(err.to_string().contains("duration_s = -1"), "{err}");
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Tenant {
    arrival: ArrivalProcess,
}

fn parse(line: &str) -> std::result::Result<ArrivalProcess, String> {
    toml::from_str::<Tenant>(line).map(|t| t.arrival).map_err(|e| e.to_string())
}

#[test]
fn every_kind_parses_from_a_one_line_inline_table() {
    let cases = [
        (r#"arrival = { kind = "poisson", rate = 200.0 }"#, ArrivalProcess::Poisson { rate: 200.0 }),
        (r#"arrival = { kind = "uniform", rate = 10.0 }"#, ArrivalProcess::Uniform { rate: 10.0, spread: 1.0 }),
        (r#"arrival = { kind = "gamma", rate = 10.0, cv = 3.0 }"#, ArrivalProcess::Gamma { rate: 10.0, cv: 3.0 }),
        (
            r#"arrival = { kind = "on_off", rate_on = 100.0, on_s = 1.0, off_s = 4.0 }"#,
            ArrivalProcess::OnOff { rate_on: 100.0, on_s: 1.0, off_s: 4.0, rate_off: 0.0 },
        ),
        (
            r#"arrival = { kind = "closed_loop", clients = 8, think_ms = 5.0 }"#,
            ArrivalProcess::ClosedLoop { clients: 8, think_ms: 5.0, think: ThinkTime::Exponential },
        ),
        (
            r#"arrival = { kind = "closed_loop", clients = 1, think_ms = 0.0, think = "fixed" }"#,
            ArrivalProcess::ClosedLoop { clients: 1, think_ms: 0.0, think: ThinkTime::Fixed },
        ),
        (
            r#"arrival = { kind = "trace", path = "x.csv", format = "azure_functions", target_rate = 50.0, minute_s = 1.0 }"#,
            azure(None, Some(50.0), 1.0, 0).with_path("x.csv"),
        ),
        (
            r#"arrival = { kind = "trace", path = "t.txt", format = "timestamps", unit = "ms" }"#,
            trace(TraceSpec { unit: TimeUnit::Ms, ..TraceSpec::new("t.txt", TraceFormat::Timestamps) }),
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(parse(line).expect(line), expected, "{line}");
    }
}

impl ArrivalProcess {
    fn with_path(mut self, path: &str) -> Self {
        if let ArrivalProcess::Trace(spec) = &mut self {
            spec.path = path.into();
        }
        self
    }
}

#[test]
fn an_unknown_kind_or_field_is_rejected_naming_it() {
    let err = parse(r#"arrival = { kind = "poison", rate = 1.0 }"#).expect_err("unknown kind");
    assert!(err.contains("poison"), "{err}");
    let err = parse(r#"arrival = { kind = "poisson", rate = 1.0, burst = 2 }"#).expect_err("unknown field");
    assert!(err.contains("burst"), "{err}");
    let err = parse(r#"arrival = { kind = "trace", path = "x", format = "timestamps", rate = 2 }"#).expect_err("field");
    assert!(err.contains("`rate`"), "{err}");
    let err = parse(r#"arrival = { kind = "trace", path = "x", format = "csv" }"#).expect_err("format");
    assert!(err.contains("csv"), "{err}");
    let err = parse(r#"arrival = { rate = 1.0 }"#).expect_err("no kind");
    assert!(err.contains("kind"), "{err}");
}

#[test]
fn with_rate_scales_every_rate_by_one_factor() {
    let on_off = ArrivalProcess::OnOff { rate_on: 100.0, on_s: 1.0, off_s: 3.0, rate_off: 20.0 };
    let scaled = on_off.with_rate(80.0, "t").expect("scales");
    assert_eq!(scaled, ArrivalProcess::OnOff { rate_on: 200.0, on_s: 1.0, off_s: 3.0, rate_off: 40.0 });
    assert_eq!(scaled.nominal_rate(), Some(80.0));
    let gamma = ArrivalProcess::Gamma { rate: 1.0, cv: 2.0 }.with_rate(50.0, "t").expect("scales");
    assert_eq!(gamma, ArrivalProcess::Gamma { rate: 50.0, cv: 2.0 });
    let closed = ArrivalProcess::ClosedLoop { clients: 2, think_ms: 1.0, think: ThinkTime::Fixed };
    assert!(closed.with_rate(10.0, "t").unwrap_err().to_string().contains("closed loop"));
    assert!(gamma.with_rate(-1.0, "t").is_err());
}

#[test]
fn arrival_processes_round_trip_through_toml_and_json() {
    let processes = [
        ArrivalProcess::OnOff { rate_on: 100.0, on_s: 1.0, off_s: 4.0, rate_off: 2.0 },
        ArrivalProcess::ClosedLoop { clients: 8, think_ms: 5.0, think: ThinkTime::Fixed },
        azure(Some(BURST), Some(50.0), 1.0, 3),
        trace(TraceSpec::new("t.txt", TraceFormat::Timestamps)),
    ];
    for arrival in processes {
        let tenant = Tenant { arrival };
        let text = toml::to_string(&tenant).expect("serialises");
        assert_eq!(toml::from_str::<Tenant>(&text).expect("parses back"), tenant, "{text}");
        let json = serde_json::to_string(&tenant).expect("serialises");
        assert_eq!(serde_json::from_str::<Tenant>(&json).expect("parses back"), tenant, "{json}");
    }
}
