//! `coloc dataset check` holds a dataset that obeys every invariant, and each invariant fails
//! when the data breaks it, one at a time.

mod common;

use coloc_dataset::check::{Invariant, MAX_LAUNCH_GAP_NS, check};
use coloc_dataset::rows::*;
use coloc_dataset::solo_rows::*;
use coloc_dataset::{Dataset, progress, store};
use coloc_workloads::scenario::{PartitionKind, SoloShare};

use common::{CLOCK_NS, Synthetic, build};

/// The problems `check` reports for `inv`, and that every other invariant holds.
fn problems_of(s: &Synthetic, inv: Invariant) -> Vec<String> {
    let r = check(&s.dir).unwrap();
    assert!(r.consolidated);
    for f in &r.findings {
        if f.invariant != inv {
            assert!(f.problems.is_empty(), "{:?} failed too: {:?}", f.invariant, f.problems);
        }
    }
    r.findings.iter().find(|f| f.invariant == inv).unwrap().problems.clone()
}

fn pair_run(s: &Synthetic) -> String {
    s.keys.iter().find(|k| k.contains("pair")).unwrap().clone()
}

#[test]
fn the_synthetic_dataset_is_whole_and_every_invariant_checks_something() {
    let s = build("whole");
    let r = check(&s.dir).unwrap();
    for f in &r.findings {
        assert!(f.problems.is_empty(), "{:?}: {:?}", f.invariant, f.problems);
        assert!(f.checked > 0, "{:?} checked nothing", f.invariant);
    }
    assert!(r.is_whole());
    assert_eq!(r.expected_runs, 6, "3 measured runs and 3 references (first, after 2, last)");
    assert_eq!(r.recorded_runs, 6);
}

#[test]
fn tables_read_back_as_written() {
    let s = build("roundtrip");
    let ds = Dataset::open(&s.dir).unwrap();
    let runs: Vec<RunRow> = ds.load().unwrap();
    assert_eq!(runs, progress::read(&s.dir).unwrap());
    assert_eq!(runs[0].notes, vec!["a note".to_string()]);
    let tenants: Vec<TenantRow> = ds.load().unwrap();
    assert!(tenants.iter().any(|t| t.share == SoloShare::Green { sms: 56 } && t.sms == Some(56)));
    assert!(tenants.iter().all(|t| t.p50_ms.is_none() && t.rate_rps == Some(1000.0)));
    let k: Vec<KernelRow> = ds.load().unwrap();
    assert!(k.iter().any(|k| k.kind == LaunchKind::Cublas) && k.iter().all(|k| k.aggressor.is_none()));
    assert_eq!(ds.manifest().unwrap().ceilings, common::ceilings());
}

#[test]
fn a_column_of_the_wrong_kind_is_an_error_naming_table_column_and_row() {
    let s = build("badcolumn");
    s.edit::<RunRow>(|rows| rows.truncate(1));
    let df = polars::prelude::df!("run" => ["a"], "status" => ["MAYBE"]).unwrap();
    let mut df = df;
    store::save_frame(&s.dir.join("runs.parquet"), &mut df).unwrap();
    let err = Dataset::open(&s.dir).unwrap().load::<RunRow>().unwrap_err().to_string();
    assert!(err.contains("runs.parquet") && err.contains("runs.scenario"), "{err}");
}

#[test]
fn a_run_recorded_twice_or_missing_or_an_orphan_row_is_caught() {
    let s = build("runs");
    s.edit::<RunRow>(|rows| {
        let first = rows[0].clone();
        rows.push(first);
        rows.remove(1);
    });
    let p = problems_of(&s, Invariant::RunsOnce);
    assert!(p.iter().any(|p| p.contains("more than once")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("missing")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("not in runs.parquet")), "{p:?}");
}

#[test]
fn request_times_that_do_not_add_up_are_caught() {
    let s = build("times");
    s.edit::<RequestRow>(|rows| {
        rows[10].latency_ns = rows[10].latency_ns.map(|l| l + 1);
        rows[20].slo_met = !rows[20].slo_met;
    });
    let p = problems_of(&s, Invariant::RequestTimes);
    assert!(p.iter().any(|p| p.starts_with("1 request(s) whose times")), "{p:?}");
    assert!(p.iter().any(|p| p.starts_with("1 request(s) whose slo_met")), "{p:?}");
}

#[test]
fn a_gemm_faster_than_the_matrix_ceiling_is_caught_alone_and_co_located() {
    // the first dataset's BERT fc2: 4.8 GFLOP in 2.27 us, twice the chip's peak
    let s = build("ceilings");
    s.edit::<SoloKernelRow>(|rows| {
        let gemm = rows.iter_mut().find(|k| k.kind == LaunchKind::Cublas).unwrap();
        gemm.time_us = Some(gemm.floor_us / 2.0);
    });
    s.edit::<KernelRow>(|rows| {
        let gemm = rows.iter_mut().find(|k| k.kind == LaunchKind::Cublas).unwrap();
        gemm.end_ns = gemm.start_ns + 1;
    });
    let p = problems_of(&s, Invariant::Ceilings);
    assert!(p.iter().any(|p| p.starts_with("1 solo kernel launch(es) faster")), "{p:?}");
    assert!(p.iter().any(|p| p.starts_with("1 co-located kernel launch(es) faster")), "{p:?}");
}

#[test]
fn an_operator_timed_by_its_epilogue_alone_is_caught() {
    let s = build("epilogue");
    s.edit::<SoloOpRow>(|rows| {
        let conv = rows.iter_mut().find(|o| o.launches == 3).unwrap();
        conv.time_us = Some(conv.floor_us * 0.5);
    });
    let p = problems_of(&s, Invariant::Ceilings);
    assert!(p.iter().any(|p| p.starts_with("1 solo operator(s) faster")), "{p:?}");
}

#[test]
fn a_batch_with_a_launch_missing_or_a_gap_in_a_green_context_is_caught() {
    let s = build("coverage");
    let pair = pair_run(&s);
    s.edit::<KernelRow>(|rows| {
        let i = rows.iter().position(|k| k.kind == LaunchKind::Cublas).unwrap();
        rows.remove(i);
        // push the rest of one green batch back: a gap no graph replay leaves
        let (b, t) = rows.iter().find(|k| k.run == pair && k.batch > 0).map(|k| (k.batch, k.tenant)).unwrap();
        for k in rows.iter_mut().filter(|k| k.run == pair && k.batch == b && k.tenant == t && k.op >= 3) {
            k.start_ns += 2 * MAX_LAUNCH_GAP_NS;
            k.end_ns += 2 * MAX_LAUNCH_GAP_NS;
        }
    });
    let p = problems_of(&s, Invariant::Coverage);
    assert!(p.iter().any(|p| p.contains("without every launch")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("gap between launches")), "{p:?}");
}

#[test]
fn the_same_gap_under_mps_is_waiting_for_sms_not_a_missing_launch() {
    let s = build("mpsgap");
    let pair = pair_run(&s);
    s.edit::<RunRow>(|rows| rows.iter_mut().filter(|r| r.run == pair).for_each(|r| r.partition = PartitionKind::Mps));
    s.edit::<KernelRow>(|rows| {
        let b = rows.iter().find(|k| k.run == pair && k.batch > 0).map(|k| k.batch).unwrap();
        for k in rows.iter_mut().filter(|k| k.run == pair && k.batch == b && k.tenant == Some(0) && k.op >= 3) {
            k.start_ns += 2 * MAX_LAUNCH_GAP_NS;
            k.end_ns += 2 * MAX_LAUNCH_GAP_NS;
        }
    });
    s.edit::<BatchRow>(|rows| {
        let b = rows.iter_mut().find(|b| b.run == pair && b.tenant == 0 && b.sampled && b.batch > 0).unwrap();
        b.end_ns += 2 * MAX_LAUNCH_GAP_NS;
        b.noticed_ns += 2 * MAX_LAUNCH_GAP_NS;
    });
    let r = check(&s.dir).unwrap();
    let cov = r.findings.iter().find(|f| f.invariant == Invariant::Coverage).unwrap();
    assert!(cov.problems.iter().all(|p| !p.contains("gap between")), "{:?}", cov.problems);
}

#[test]
fn a_completion_noticed_before_the_kernel_ended_is_caught() {
    // the first dataset: 57% of batches "noticed" before the GPU finished, offset-only clock
    let s = build("clock");
    s.edit::<BatchRow>(|rows| {
        rows[5].noticed_ns = rows[5].end_ns - 3 * CLOCK_NS;
        rows[7].start_ns = rows[7].formed_ns - 3 * CLOCK_NS;
    });
    let p = problems_of(&s, Invariant::Clock);
    assert!(p.iter().any(|p| p.contains("noticed before")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("before they were formed")), "{p:?}");
}

#[test]
fn a_noticed_time_within_the_clock_uncertainty_is_fine() {
    let s = build("clockok");
    s.edit::<BatchRow>(|rows| rows[5].noticed_ns = rows[5].end_ns - CLOCK_NS / 2);
    assert!(problems_of(&s, Invariant::Clock).is_empty());
}

#[test]
fn repetitions_with_the_same_arrivals_are_caught() {
    // the first dataset: r1, r2 and r3 of the noise sweep had identical inter-arrival gaps
    let s = build("arrivals");
    let pair: Vec<String> = s.keys.iter().filter(|k| k.contains("pair")).cloned().collect();
    s.edit::<RequestRow>(|rows| {
        let first: Vec<i64> = rows.iter().filter(|r| r.run == pair[0] && r.tenant == 0).map(|r| r.arrival_ns).collect();
        for (r, a) in rows.iter_mut().filter(|r| r.run == pair[1] && r.tenant == 0).zip(&first) {
            // the same sequence at another rate is the same sequence (each request moved whole)
            let delta = 2 * a - r.arrival_ns;
            r.arrival_ns += delta;
            for t in [&mut r.formed_ns, &mut r.start_ns, &mut r.end_ns, &mut r.noticed_ns].into_iter().flatten() {
                *t += delta;
            }
        }
    });
    let p = problems_of(&s, Invariant::DistinctArrivals);
    assert!(p.iter().any(|p| p.contains("arrival sequence of another")), "{p:?}");
}

#[test]
fn a_co_located_tenant_without_a_solo_profile_at_its_share_is_caught() {
    let s = build("share");
    s.edit::<SoloModelRow>(|rows| rows.retain(|m| m.share == SoloShare::Device));
    let p = problems_of(&s, Invariant::SoloAtShare);
    assert!(p.iter().any(|p| p.contains("without a solo profile at their share")), "{p:?}");
}

#[test]
fn a_tenant_granted_other_sms_than_asked_is_caught() {
    // equal shares of two mechanisms that are not equal in SMs (56 against 66)
    let s = build("granted");
    let pair = pair_run(&s);
    s.edit::<TenantRow>(|rows| rows.iter_mut().filter(|t| t.run == pair).for_each(|t| t.granted_sms = 66));
    let p = problems_of(&s, Invariant::SoloAtShare);
    assert!(p.iter().any(|p| p.contains("granted other SMs than their solo profile")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("asked for 56 SMs, granted 66")), "{p:?}");
}

#[test]
fn a_valid_run_whose_queue_grows_is_caught_and_an_invalid_one_is_not() {
    let s = build("queue");
    let pair = pair_run(&s);
    let grow = |rows: &mut Vec<RequestRow>| {
        for r in rows.iter_mut().filter(|r| r.run == pair && r.tenant == 0 && !r.warmup) {
            // the wait climbs by 40 ms over the window
            let extra = r.arrival_ns / 25;
            for t in [&mut r.start_ns, &mut r.end_ns, &mut r.noticed_ns, &mut r.formed_ns].into_iter().flatten() {
                *t += extra;
            }
            r.queue_wait_ns = r.formed_ns.map(|f| f - r.arrival_ns);
            r.latency_ns = r.end_ns.map(|e| e - r.arrival_ns);
            r.slo_met = r.latency_ns.is_some_and(|l| l as f64 / 1e6 <= common::slo_ms());
        }
    };
    s.edit::<RequestRow>(grow);
    let p = problems_of(&s, Invariant::StableQueues);
    assert!(p.iter().any(|p| p.contains("queue grew")), "{p:?}");
    s.edit::<RunRow>(|rows| rows.iter_mut().filter(|r| r.run == pair).for_each(|r| r.status = Status::Invalid));
    assert!(problems_of(&s, Invariant::StableQueues).is_empty());
}

#[test]
fn requests_clockwork_dropped_are_misses_not_a_queue_that_grew() {
    let s = build("drops");
    let pair = pair_run(&s);
    // two of every three requests of the second half of the window never served
    s.edit::<RequestRow>(|rows| {
        let half = rows.iter().filter(|r| r.run == pair && !r.warmup).map(|r| r.arrival_ns).max().unwrap() / 2;
        for r in rows.iter_mut().filter(|r| r.run == pair && r.tenant == 0 && !r.warmup && r.arrival_ns > half) {
            if r.request % 3 != 0 {
                r.batch = None;
                (r.formed_ns, r.start_ns, r.end_ns, r.noticed_ns) = (None, None, None, None);
                (r.queue_wait_ns, r.dispatch_wait_ns, r.gpu_ns, r.latency_ns) = (None, None, None, None);
                r.slo_met = false;
            }
        }
    });
    let stable = |s: &Synthetic| {
        let r = check(&s.dir).unwrap();
        r.findings.iter().find(|f| f.invariant == Invariant::StableQueues).unwrap().problems.clone()
    };
    // never served, under a tenant's own loop: still waiting at the end of the window
    assert!(!stable(&s).is_empty());
    // the same requests dropped by Clockwork never waited in its queue
    let path = s.dir.join("scenarios.json");
    let mut scenarios: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let pairs = scenarios.iter_mut().filter(|sc| sc["name"].as_str().unwrap().starts_with("pair"));
    assert_eq!(pairs.map(|sc| sc["scheduler"] = "clockwork".into()).count(), 1);
    std::fs::write(&path, serde_json::to_string(&scenarios).unwrap()).unwrap();
    assert!(stable(&s).is_empty(), "{:?}", stable(&s));
}

#[test]
fn an_unfinished_dataset_is_not_whole_but_its_log_is_judged() {
    let s = build("unfinished");
    std::fs::create_dir_all(s.dir.join("parts")).unwrap();
    let r = check(&s.dir).unwrap();
    assert!(!r.consolidated && !r.is_whole());
    assert!(r.findings[0].problems.is_empty(), "{:?}", r.findings[0].problems);
    let again = progress::read(&s.dir).unwrap()[0].clone();
    progress::append(&s.dir, &again).unwrap();
    let r = check(&s.dir).unwrap();
    assert!(r.findings[0].problems.iter().any(|p| p.contains("more than once")), "{:?}", r.findings[0].problems);
}

#[test]
fn a_slim_copy_skips_what_it_lacks_says_so_and_still_catches_what_it_holds() {
    let s = build("slim-source");
    let slim = s.dir.with_file_name("slim-copy");
    let _ = std::fs::remove_dir_all(&slim);
    let dropped = coloc_dataset::slim::slim(&s.dir, &slim).unwrap();
    let names: Vec<&str> = dropped.iter().map(|d| d.table.as_str()).collect();
    assert_eq!(names, ["kernels", "requests"]);
    let measured: Vec<RequestRow> = Dataset::open(&s.dir).unwrap().load().unwrap();
    assert_eq!(dropped[1].rows, measured.len());
    // kept tables are the same bytes
    for t in ["batches.parquet", "tenants.parquet", "runs.parquet"] {
        assert_eq!(std::fs::read(s.dir.join(t)).unwrap(), std::fs::read(slim.join(t)).unwrap(), "{t}");
    }
    let r = check(&slim).unwrap();
    assert!(r.holds() && !r.is_whole(), "a slim copy is never called whole");
    let skipped: Vec<Invariant> = r.findings.iter().filter(|f| f.skipped.is_some()).map(|f| f.invariant).collect();
    assert_eq!(
        skipped,
        [Invariant::RequestTimes, Invariant::Coverage, Invariant::DistinctArrivals, Invariant::StableQueues]
    );
    assert!(!r.table_rows.contains_key("requests") && r.dropped.len() == 2);
    let err = Dataset::open(&slim).unwrap().load::<RequestRow>().unwrap_err().to_string();
    assert!(err.contains("requests.parquet") && err.contains("slim copy"), "{err}");
    // what it holds is still checked: a batch noticed before it ended
    let mut batches: Vec<BatchRow> = store::load(&slim).unwrap();
    batches[3].noticed_ns = batches[3].end_ns - 3 * CLOCK_NS;
    store::save(&slim, &batches).unwrap();
    let r = check(&slim).unwrap();
    assert!(!r.holds());
    let clock = r.findings.iter().find(|f| f.invariant == Invariant::Clock).unwrap();
    assert!(clock.problems.iter().any(|p| p.contains("noticed before")), "{:?}", clock.problems);
    // a copy of a copy keeps the list, and a target that exists is refused
    assert!(coloc_dataset::slim::slim(&s.dir, &slim).unwrap_err().to_string().contains("already exists"));
    std::fs::remove_dir_all(&slim).unwrap();
}

#[test]
fn a_one_stream_tenant_faster_than_its_solo_profile_is_caught_and_a_slower_one_only_alone() {
    // the whole-GPU profile measured `factor` times slower, its launches and replays alike
    let profiled_at = |s: &Synthetic, factor: f64| {
        s.edit::<SoloModelRow>(|rows| {
            for m in rows.iter_mut().filter(|m| m.share == SoloShare::Device) {
                for us in [&mut m.stamped_p50_us, &mut m.latency_p50_us, &mut m.latency_p05_us, &mut m.latency_p95_us] {
                    *us *= factor;
                }
                (m.latency_p50_lo_us, m.latency_p50_hi_us) = (m.latency_p50_us, m.latency_p50_us);
            }
        });
        s.edit::<SoloOpRow>(|rows| {
            rows.iter_mut()
                .filter(|o| o.share == SoloShare::Device)
                .for_each(|o| o.time_us = o.time_us.map(|t| t * factor))
        });
        s.edit::<SoloKernelRow>(|rows| {
            rows.iter_mut()
                .filter(|k| k.share == SoloShare::Device)
                .for_each(|k| k.time_us = k.time_us.map(|t| t * factor))
        });
        // measured beside the profiles, in their state
        s.edit::<SoloSwitchRow>(|rows| {
            rows.iter_mut().for_each(|r| {
                (r.after_self_us, r.after_other_us) = (r.after_self_us * factor, r.after_other_us * factor)
            })
        });
    };
    // the pair's two repetitions on one stream instead of green contexts: co-located there
    let on_one_stream = |s: &Synthetic| {
        s.edit::<RunRow>(|rows| {
            rows.iter_mut().filter(|r| r.run.contains("pair")).for_each(|r| r.partition = PartitionKind::TimeSliced)
        });
        s.edit::<TenantRow>(|rows| {
            rows.iter_mut().filter(|t| t.run.contains("pair")).for_each(|t| {
                (t.share, t.sms, t.granted_sms) = (SoloShare::Device, None, 132);
            })
        });
    };
    let finding = |s: &Synthetic| {
        check(&s.dir).unwrap().findings.into_iter().find(|f| f.invariant == Invariant::OneStreamAsProfiled).unwrap()
    };
    // as measured after an MPS run: the batches replay 8% faster than the profile says
    let s = build("one-stream-faster");
    on_one_stream(&s);
    profiled_at(&s, 1.0 / 0.92);
    let p = problems_of(&s, Invariant::OneStreamAsProfiled);
    // the solo run, the three references and the pair's four tenants
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("8 one-stream tenant(s) faster than their solo profile"), "{p:?}");
    assert!(p[0].contains("(tiny b4)") && p[0].contains("(0.920x)"), "{p:?}");
    assert_eq!(finding(&s).checked, 8);
    // measured before the ceilings had a process of their own: the cause and the fix, told
    let path = s.dir.join(coloc_dataset::MANIFEST);
    let mut m: coloc_dataset::manifest::Manifest = store::load_json(&path).unwrap();
    m.ceilings_measured = None;
    store::save_json(&path, &m).unwrap();
    let p = problems_of(&s, Invariant::OneStreamAsProfiled);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[1].contains("predates the manifest's record") && p[1].contains("812a8c3"), "{p:?}");
    m.ceilings_measured = Some(coloc_dataset::manifest::CeilingsMeasured::InTheMeasuringProcess);
    store::save_json(&path, &m).unwrap();
    let p = problems_of(&s, Invariant::OneStreamAsProfiled);
    assert!(p.len() == 2 && p[1].contains("no worker executable"), "{p:?}");
    // 5% slower: a lone tenant is off its profile, a co-located one may be (a cold L2)
    let s = build("one-stream-slower");
    on_one_stream(&s);
    profiled_at(&s, 0.95);
    let p = problems_of(&s, Invariant::OneStreamAsProfiled);
    assert!(
        p.len() == 1 && p[0].starts_with("4 lone one-stream tenant(s) slower") && p[0].contains("(1.053x)"),
        "{p:?}"
    );
    assert!(!p[0].contains("pair"), "{p:?}");
    // slower is not what the ceilings' state does: no hint, whatever the manifest says
    let path = s.dir.join(coloc_dataset::MANIFEST);
    let mut m: coloc_dataset::manifest::Manifest = store::load_json(&path).unwrap();
    m.ceilings_measured = None;
    store::save_json(&path, &m).unwrap();
    assert_eq!(problems_of(&s, Invariant::OneStreamAsProfiled).len(), 1);
    // 2% either way is run-to-run noise; tenants in green contexts are not on one stream
    for (name, factor) in [("one-stream-noise", 1.02), ("one-stream-noise-2", 0.98)] {
        let s = build(name);
        profiled_at(&s, factor);
        assert!(problems_of(&s, Invariant::OneStreamAsProfiled).is_empty(), "{factor}");
        assert_eq!(finding(&s).checked, 4);
    }
}

#[test]
fn a_switch_profile_off_its_solo_profile_or_faster_after_another_model_is_caught() {
    let switched = |name: &str, edit: &dyn Fn(&mut SoloSwitchRow)| {
        let s = build(name);
        s.edit::<SoloSwitchRow>(|rows| rows.iter_mut().for_each(edit));
        s
    };
    // after its own replay 5% over the profile: not the state the profile was measured in
    let s = switched("switch-off", &|r| {
        r.after_self_us *= 1.05;
        r.after_other_us *= 1.05;
    });
    let p = problems_of(&s, Invariant::SwitchAsProfiled);
    assert!(p.len() == 1 && p[0].contains("disagree with the solo profile") && p[0].contains("(1.050x)"), "{p:?}");
    assert!(p[0].contains("tiny b4 after other b1"), "{p:?}");
    // 10% faster after another model than after its own
    let s = switched("switch-faster", &|r| r.after_other_us = r.after_self_us * 0.9);
    let p = problems_of(&s, Invariant::SwitchAsProfiled);
    assert!(p.len() == 1 && p[0].contains("faster after another model") && p[0].contains("(0.900x)"), "{p:?}");
    // a model with no whole-GPU profile
    let s = switched("switch-unprofiled", &|r| r.model = "nameless".into());
    let p = problems_of(&s, Invariant::SwitchAsProfiled);
    assert!(p.len() == 1 && p[0].contains("without one whole-GPU solo profile"), "{p:?}");
    // 2% off either way is noise, and slower after another model is what the profile measures
    for (name, by) in [("switch-noise", 1.02), ("switch-noise-2", 0.98)] {
        let s = switched(name, &|r| {
            r.after_self_us *= by;
            r.after_other_us = r.after_self_us * 1.3;
        });
        assert!(problems_of(&s, Invariant::SwitchAsProfiled).is_empty(), "{by}");
    }
    // an empty switch profile (one model on the whole GPU): not checked, and said so
    let s = switched("switch-empty", &|_| {});
    s.edit::<SoloSwitchRow>(|rows| rows.clear());
    let r = check(&s.dir).unwrap();
    let f = r.findings.iter().find(|f| f.invariant == Invariant::SwitchAsProfiled).unwrap();
    assert!(f.checked == 0 && f.skipped.as_deref().unwrap().contains("empty switch profile"), "{f:?}");
    assert_eq!(r.table_rows.get("solo_switch"), Some(&0));
    // measured before switch profiles: not checked, and said so
    let s = build("switch-absent");
    std::fs::remove_file(s.dir.join("solo_switch.parquet")).unwrap();
    let r = check(&s.dir).unwrap();
    let f = r.findings.iter().find(|f| f.invariant == Invariant::SwitchAsProfiled).unwrap();
    assert!(f.checked == 0 && f.problems.is_empty() && f.skipped.as_deref().unwrap().contains("no solo_switch table"));
    assert!(!r.table_rows.contains_key("solo_switch"));
}
