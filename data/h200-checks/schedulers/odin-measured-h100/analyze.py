"""An independent read of a measured pipeline (batches.csv + measurement.json), not using coloc's
code: latency quantiles per policy, stage ratios before/during/after the stressor, and the
physical checks recomputed."""
import json, sys
import polars as pl

d = sys.argv[1]
m = json.load(open(f"{d}/measurement.json"))
b = pl.read_csv(f"{d}/batches.csv.gz")
slo_ns = m["slo_ms"] * 1e6
frm, to = m["stress"]["from_s"] * 1e9, m["stress"]["to_s"] * 1e9
print("profiles:", [round(p["span_us"], 1) for p in m["profiles"]], "stressed", round(m["stressed"]["span_us"], 1),
      "x", round(m["stressed_slowdown"], 3))
last = b.group_by(["policy", "batch"]).agg(
    pl.col("arrival_ns").first(), pl.col("dispatch_ns").first(), pl.col("noticed_ns").first(),
    pl.col("done_ns").first(), pl.col("start_gpu_ns").min().alias("gpu0"), pl.col("end_gpu_ns").max().alias("gpu1"))
lat = last.with_columns(((pl.col("done_ns") - pl.col("arrival_ns")) / 1e6).alias("lat_ms"))
for pol in lat["policy"].unique(maintain_order=True):
    x = lat.filter(pl.col("policy") == pol)
    n = x.height
    done = x.filter(pl.col("done_ns").is_not_null())
    within = done.filter(pl.col("lat_ms") <= m["slo_ms"]).height
    q = done["lat_ms"].sort()
    print(f"{pol:7s} batches {n} done {done.height} p50 {q.quantile(0.5):.2f} p99(done) {q.quantile(0.99):.2f} ms within SLO {100*within/n:.2f}%")
# per stage ratio by phase
st = b.with_columns(((pl.col("end_gpu_ns") - pl.col("start_gpu_ns")) / 1e3 / pl.col("solo_us")).alias("ratio"),
                    pl.when(pl.col("arrival_ns") < frm).then(pl.lit("before")).when(pl.col("arrival_ns") < to)
                    .then(pl.lit("during")).otherwise(pl.lit("after")).alias("phase"))
print(st.group_by(["policy", "phase", "element"]).agg(pl.col("ratio").median().alias("median_ratio"), pl.len())
      .sort(["policy", "phase", "element"]))
# physical checks recomputed
s2 = b.sort(["policy", "batch", "stage"]).with_columns(
    pl.col("end_gpu_ns").shift(1).over(["policy", "batch"]).alias("prev_end"))
bad_order = s2.filter(pl.col("start_gpu_ns") < pl.col("prev_end")).height
too_fast = st.filter(pl.col("ratio") < 0.8).height
notice = last.filter(pl.col("done_ns") > pl.col("noticed_ns") + 20000).height
print("stage order violations", bad_order, "stages < 0.8 solo", too_fast, "done after noticed (>20us)", notice)
print("noticed - done us: median", (last["noticed_ns"] - last["done_ns"]).median() / 1e3)
for r in m["runs"]:
    print(r["policy"], "responses", [(round(x["at_ns"] / 1e9, 3), x["from_layout"], x["to_layout"],
                                      [round(e, 2) for e in x["estimates"]], x["graphs_captured"], round(x["capture_ms"], 1))
                                     for x in r["responses"]], "layouts", r["layouts"])
