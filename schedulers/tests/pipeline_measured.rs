//! A measured pipeline judged: a run that keeps to physics and to the host's timer is VALID,
//! and each kind of broken data (a stage that starts before the one it depends on ends, a
//! stage faster than it runs alone, a batch that ends after the host saw it end, an uncertain
//! clock, a stressor that did not cover its episode, elements that disagree) is INVALID with
//! its reason. And what a measurement is asked is checked before any GPU is touched.

use coloc_dataset::clock::ClockMap;
use coloc_schedulers::pipeline::measured::*;
use coloc_schedulers::pipeline::{Layout, Outcome, Params, Policy, Split};
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::StressorName;

const WINDOW_START: i64 = 1_000_000_000;

/// Host and GPU clocks 5 ms apart, no drift.
fn clock() -> ClockMap {
    ClockMap { anchor_host_ns: WINDOW_START, offset_ns: 5_000_000, drift_ns_per_s: 0.0, uncertainty_ns: 2_000 }
}

fn gpu(host_from_window_ns: i64) -> u64 {
    (WINDOW_START + host_from_window_ns + 5_000_000) as u64
}

fn profile(element: usize, span_us: f64, stressed: bool) -> Profile {
    Profile { element, granted_sms: 40, stressed, replays: 50, op_us: vec![span_us / 2.0; 2], span_us }
}

/// Batches every 1 ms through two stages of 300 us each, the second starting 10 us after the
/// first ends; dispatched 5 us after arrival, noticed 20 us after the end.
fn run(policy: Policy) -> MeasuredRun {
    let batches = (0..100)
        .map(|b| {
            let arrival = b as i64 * 1_000_000;
            let s0 = arrival + 15_000;
            let stages = vec![
                StageTiming {
                    element: 0,
                    start_gpu_ns: Some(gpu(s0)),
                    end_gpu_ns: Some(gpu(s0 + 300_000)),
                    solo_us: 300.0,
                },
                StageTiming {
                    element: 1,
                    start_gpu_ns: Some(gpu(s0 + 310_000)),
                    end_gpu_ns: Some(gpu(s0 + 610_000)),
                    solo_us: 300.0,
                },
            ];
            BatchRow {
                batch: b,
                arrival_ns: arrival,
                dispatch_ns: Some(arrival + 5_000),
                noticed_ns: Some(s0 + 630_000),
                done_ns: Some(s0 + 610_000),
                layout: 0,
                stages,
            }
        })
        .collect();
    let layout = Layout { split: Split::from_starts(&[1], 2).unwrap(), element_of: vec![0, 1] };
    let latency: Vec<Option<f64>> = (0..100).map(|_| Some(0.625)).collect();
    MeasuredRun {
        policy,
        rate_rps: 8_000.0,
        outcome: Outcome::of(policy, 8, &latency, 0.1, 5.0, 0, &layout),
        layouts: vec![LayoutRow { starts: vec![1], elements: vec![0, 1] }],
        responses: vec![],
        batches,
        clock: clock(),
        window_start_host_ns: WINDOW_START,
        stressor_launches: 40,
        stressor_first_start_ns: Some(20_050_000),
        stressor_last_end_ns: Some(60_400_000),
    }
}

fn measured() -> MeasuredPipeline {
    MeasuredPipeline {
        model: "resnet50".into(),
        batch: 8,
        elements: 2,
        sms_asked: 40,
        device: "test".into(),
        slots: 3,
        stress: StressEpisode { element: 1, from_s: 0.02, to_s: 0.06 },
        stressor: StressorName::Fma,
        intensity: 1.0,
        slo_ms: 5.0,
        duration_s: 0.1,
        params: ParamsRow { window: 8, threshold: 0.1 },
        seed: 1,
        profiles: vec![profile(0, 600.0, false), profile(1, 610.0, false)],
        stressed: profile(1, 1_200.0, true),
        op_us: vec![300.0, 300.0],
        stressed_slowdown: 1_200.0 / 610.0,
        capacity_rps: 26_000.0,
        unstressed: unstressed(),
        runs: vec![run(Policy::Static), run(Policy::Odin)],
    }
}

/// The balanced pipeline without the stressor: the 20 batches before its episode (20 ms).
fn unstressed() -> MeasuredRun {
    let mut u = MeasuredRun {
        stressor_launches: 0,
        stressor_first_start_ns: None,
        stressor_last_end_ns: None,
        ..run(Policy::Static)
    };
    u.batches.truncate(20);
    u
}

fn problems_of(m: &MeasuredPipeline) -> String {
    let v = judge(m);
    assert!(!v.is_valid(), "broken data judged VALID");
    v.problems.join("\n")
}

#[test]
fn a_run_within_physics_and_the_host_timer_is_valid() {
    let v = judge(&measured());
    assert!(v.is_valid(), "{v}");
    assert_eq!(v.to_string(), "VALID");
}

#[test]
fn a_stage_that_starts_before_the_one_it_depends_on_ends_is_invalid() {
    let mut m = measured();
    let s = &mut m.runs[1].batches[7].stages;
    s[1].start_gpu_ns = Some(s[0].end_gpu_ns.unwrap() - 50_000);
    let p = problems_of(&m);
    assert!(p.contains("odin: 1 stages that start before the stage they depend on ends"), "{p}");
    assert!(p.contains("batch 7 stage 1"), "{p}");
    assert!(!p.contains("static"), "{p}");
}

#[test]
fn a_stage_faster_than_alone_on_its_sms_is_invalid() {
    let mut m = measured();
    m.runs[0].batches[3].stages[0].solo_us = 400.0; // ran 300 us: 75% of solo
    let p = problems_of(&m);
    assert!(p.contains("static: 1 stages faster than 80% of their solo time"), "{p}");
    // at 80% exactly it is not
    let mut m = measured();
    m.runs[0].batches[3].stages[0].solo_us = 375.0;
    assert!(judge(&m).is_valid(), "{}", judge(&m));
}

#[test]
fn a_batch_the_gpu_ends_after_the_host_saw_it_end_is_invalid() {
    let mut m = measured();
    let b = &mut m.runs[0].batches[10];
    b.noticed_ns = Some(b.done_ns.unwrap() - 3_000); // 3 us before, the clock is known to 2 us
    let p = problems_of(&m);
    assert!(p.contains("1 batches ended on the GPU after the host saw them complete"), "{p}");
    let mut m = measured();
    let b = &mut m.runs[0].batches[10];
    b.noticed_ns = Some(b.done_ns.unwrap() - 1_500); // within the clock's uncertainty
    assert!(judge(&m).is_valid(), "{}", judge(&m));
}

#[test]
fn a_batch_started_before_it_was_dispatched_is_invalid() {
    let mut m = measured();
    let b = &mut m.runs[1].batches[0];
    b.dispatch_ns = Some(b.arrival_ns + 14_000); // its first stage starts at arrival + 15 us
    assert!(judge(&m).is_valid(), "{}", judge(&m));
    m.runs[1].batches[0].dispatch_ns = Some(m.runs[1].batches[0].arrival_ns + 18_000);
    let p = problems_of(&m);
    assert!(p.contains("odin: 1 batches started on the GPU before the host dispatched them"), "{p}");
}

#[test]
fn a_batch_left_on_the_gpu_or_noticed_without_its_stages_is_invalid() {
    let mut m = measured();
    m.runs[0].batches[99].noticed_ns = None;
    m.runs[0].batches[99].done_ns = None;
    let p = problems_of(&m);
    assert!(p.contains("static: 1 batches still on the GPU when the run ended"), "{p}");
    let mut m = measured();
    m.runs[1].batches[5].stages.clear();
    m.runs[1].batches[5].done_ns = None;
    let p = problems_of(&m);
    assert!(p.contains("odin: 1 stages without usable stamps (first: batch 5 was noticed without its stages)"), "{p}");
    // a batch never dispatched (the run ended first) is an outcome, not a fault
    let mut m = measured();
    let b = &mut m.runs[1].batches[99];
    (b.dispatch_ns, b.noticed_ns, b.done_ns) = (None, None, None);
    b.stages.clear();
    assert!(judge(&m).is_valid(), "{}", judge(&m));
}

#[test]
fn each_kind_of_problem_names_its_own_first_case() {
    let mut m = measured();
    m.runs[0].batches[2].stages[1].end_gpu_ns = None;
    let s = &mut m.runs[0].batches[8].stages;
    s[1].start_gpu_ns = Some(s[0].end_gpu_ns.unwrap() - 50_000);
    let p = problems_of(&m);
    assert!(p.contains("static: 1 stages without usable stamps (first: batch 2 stage 1 has no stamps)"), "{p}");
    assert!(
        p.contains("static: 1 stages that start before the stage they depend on ends (first: batch 8 stage 1"),
        "{p}"
    );
}

#[test]
fn an_uncertain_clock_and_unstamped_stages_are_invalid() {
    let mut m = measured();
    m.runs[0].clock.uncertainty_ns = 25_000;
    m.runs[1].batches[4].stages[0].end_gpu_ns = None;
    let p = problems_of(&m);
    assert!(p.contains("static: the clock map is uncertain by 25.0 us"), "{p}");
    assert!(p.contains("odin: 1 stages without usable stamps"), "{p}");
}

#[test]
fn a_stressor_that_did_not_cover_its_episode_is_invalid() {
    let mut m = measured();
    m.runs[1].stressor_last_end_ns = Some(50_000_000); // stopped 10 ms early
    let p = problems_of(&m);
    assert!(p.contains("odin: the stressor's 40 launches span"), "{p}");
    let mut m = measured();
    m.runs[0].stressor_first_start_ns = None;
    m.runs[0].stressor_last_end_ns = None;
    assert!(problems_of(&m).contains("static: the stressor's"));
}

#[test]
fn elements_that_disagree_alone_or_a_stressor_that_speeds_up_are_invalid() {
    let mut m = measured();
    m.profiles[1].span_us = 700.0; // 7.7% above the median of 600 and 700 (650)
    assert!(problems_of(&m).contains("element 1 (40 SMs) runs the model in 700.0 us alone"));
    let mut m = measured();
    m.stressed.span_us = 580.0;
    assert!(problems_of(&m).contains("a stressor cannot make it faster"));
}

#[test]
fn the_batches_csv_is_one_table_a_row_per_run_batch_and_stage() {
    let m = measured();
    let csv = batches_csv(&m.runs);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 2 * 100 * 2);
    assert!(lines[0].starts_with("policy,batch,arrival_ns"));
    assert_eq!(lines.iter().filter(|l| l.starts_with("policy,")).count(), 1, "one header");
    assert_eq!(lines[1], format!("static,0,0,5000,645000,625000,0,0,0,{},{},300.000", gpu(15_000), gpu(315_000)));
    assert!(lines[201].starts_with("odin,0,0,5000,"), "{}", lines[201]);
}

fn spec() -> MeasureSpec {
    let (model, _) = ModelSpec::resolve("resnet50", std::path::Path::new(".")).unwrap();
    MeasureSpec {
        model,
        batch: 8,
        elements: 3,
        sms: 40,
        rate_rps: None,
        load: 0.5,
        duration_s: 6.0,
        slo_ms: 5.0,
        stress: "1:2-4".parse().unwrap(),
        stressor: StressorName::Fma,
        intensity: 1.0,
        params: Params::default(),
        seed: 1,
        policies: Policy::ALL.to_vec(),
        replays: 50,
    }
}

#[test]
fn what_a_measurement_is_asked_is_checked_naming_the_input() {
    assert!(spec().check().is_ok());
    let err = |s: MeasureSpec| s.check().unwrap_err().to_string();
    assert!(err(MeasureSpec { elements: 1, ..spec() }).starts_with("elements: 1"));
    assert!(err(MeasureSpec { stress: "3:2-4".parse().unwrap(), ..spec() }).contains("element 3 of 3 elements"));
    assert!(err(MeasureSpec { stress: "1:2-7".parse().unwrap(), ..spec() }).contains("after the window of 6 s"));
    assert!(err(MeasureSpec { intensity: 1.5, ..spec() }).starts_with("intensity: 1.5"));
    assert!(err(MeasureSpec { rate_rps: Some(-1.0), ..spec() }).starts_with("rate: -1"));
    assert!(err(MeasureSpec { replays: 2, ..spec() }).starts_with("replays: 2"));
    assert!(err(MeasureSpec { duration_s: 100.0, ..spec() }).starts_with("duration_s: 100"));
    for (text, why) in [
        ("1-2-4", "two fields"),
        ("x:2-4", "not a number"),
        ("1:4-2", "0 <= FROM < TO"),
        ("1:2", "the interval is not FROM-TO"),
    ] {
        let e = text.parse::<StressEpisode>().unwrap_err().to_string();
        assert!(e.contains(&format!("stress episode `{text}`")) && e.contains(why), "{text}: {e}");
    }
    let e: StressEpisode = "2:1.5-3".parse().unwrap();
    assert!(e.active(2, 1.5) && e.active(2, 2.9) && !e.active(2, 3.0) && !e.active(1, 2.0));
}

#[test]
fn the_basis_is_each_elements_median_time_over_solo_in_the_unstressed_pipeline() {
    let mut u = unstressed();
    // element 1's stages 1.2x their solo time in 12 of 20 batches, element 0's at solo
    for b in u.batches.iter_mut().take(12) {
        let s = &mut b.stages[1];
        s.end_gpu_ns = Some(s.start_gpu_ns.unwrap() + 360_000);
    }
    let basis = basis_of(&u, 2).unwrap();
    assert!((basis[0] - 1.0).abs() < 1e-9, "{basis:?}");
    assert!((basis[1] - 1.2).abs() < 1e-9, "{basis:?}");
    let e = basis_of(&u, 3).unwrap_err().to_string();
    assert!(e.contains("element 2 ran no stamped stage"), "{e}");
}

#[test]
fn a_basis_beyond_what_neighbours_can_do_or_a_stressor_in_the_unstressed_run_is_invalid() {
    // element 1's stages 1.6x what it ran alone, element 0's 0.7x
    let with_solo = |element: usize, solo_us: f64| {
        let mut m = measured();
        m.unstressed.batches.iter_mut().for_each(|b| b.stages[element].solo_us = solo_us);
        problems_of(&m)
    };
    let p = with_solo(1, 300.0 / 1.6);
    assert!(p.contains("element 1 ran its stages at 1.600x their solo time in the unstressed pipeline"), "{p}");
    assert!(with_solo(0, 300.0 / 0.7).contains("element 0 ran its stages at 0.700x"));
    let mut m = measured();
    m.elements = 3;
    assert!(problems_of(&m).contains("element 2 ran no stamped stage"));
    let mut m = measured();
    m.unstressed.stressor_launches = 3;
    assert!(problems_of(&m).contains("the unstressed pipeline: the stressor launched 3 times in it"));
    let mut m = measured();
    m.unstressed.policy = Policy::Odin;
    assert!(problems_of(&m).contains("the unstressed pipeline ran odin with 1 layouts and 0 responses"));
    let mut m = measured();
    m.stress.from_s = 0.015; // 5 of its 20 batches arrived after the episode began
    assert!(problems_of(&m).contains("the unstressed pipeline has 5 batches that arrived in the stress episode"));
    let mut m = measured();
    m.unstressed.batches.truncate(10);
    assert!(problems_of(&m).contains("the unstressed pipeline ran 10 batches, fewer than two windows (16)"));
    // its batches are judged as every run's
    let mut m = measured();
    m.unstressed.batches[4].stages[1].start_gpu_ns = Some(gpu(4_000_000 + 200_000));
    assert!(
        problems_of(&m).contains("the unstressed pipeline: 1 stages that start before the stage they depend on ends")
    );
}

#[test]
fn a_layout_used_before_its_response_took_effect_is_invalid() {
    let mut m = measured();
    let odin = &mut m.runs[1];
    odin.layouts.push(LayoutRow { starts: vec![1], elements: vec![1, 0] });
    odin.responses.push(ResponseRow {
        at_ns: 30_000_000,
        from_layout: 0,
        to_layout: 1,
        estimates: vec![1.0, 2.0],
        graphs_captured: 4,
        capture_ms: 3.0,
        applied_ns: Some(40_000_000),
    });
    for b in odin.batches.iter_mut().filter(|b| b.arrival_ns >= 41_000_000) {
        b.layout = 1;
    }
    assert!(judge(&m).is_valid(), "{}", judge(&m));
    m.runs[1].batches[39].layout = 1; // dispatched at 39.005 ms, before the layout took effect
    assert!(problems_of(&m).contains(
        "odin: the response at 30000000 ns took effect at 40000000 ns, and 1 batches ran its layout before that"
    ));
    let mut m2 = measured();
    m2.runs[1].layouts.push(LayoutRow { starts: vec![1], elements: vec![1, 0] });
    m2.runs[1].responses.push(ResponseRow {
        at_ns: 30_000_000,
        from_layout: 0,
        to_layout: 1,
        estimates: vec![1.0, 2.0],
        graphs_captured: 4,
        capture_ms: 3.0,
        applied_ns: Some(20_000_000),
    });
    assert!(problems_of(&m2).contains("took effect at 20000000 ns"));
}
