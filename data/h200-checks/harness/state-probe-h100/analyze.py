import sys, polars as pl
d = sys.argv[1]
runs = pl.read_parquet(f"{d}/runs.parquet").sort("position")
ten = pl.read_parquet(f"{d}/tenants.parquet")
bat = pl.read_parquet(f"{d}/batches.parquet").filter(pl.col("start_ns") >= 0)
solo = pl.read_parquet(f"{d}/solo_models.parquet")
dev = solo.filter(pl.col("share").cast(pl.Utf8).str.contains("(?i)device"))
print(solo.select("model","batch","share","stamped_p50_us","latency_p50_us"))
prof = {(r["model"], r["batch"]): r["stamped_p50_us"] for r in dev.iter_rows(named=True)}
for r in runs.iter_rows(named=True):
    ts = ten.filter(pl.col("run") == r["run"])
    out = []
    for t in ts.iter_rows(named=True):
        b = bat.filter((pl.col("run") == r["run"]) & (pl.col("tenant") == t["tenant"]))
        if b.height == 0: continue
        med = ((b["end_ns"] - b["start_ns"]) / 1e3).median()
        p = prof.get((t["model"], int(b["bucket"][0])))
        out.append(f"{t['model']} b{b['bucket'][0]} med {med:.1f} prof {p} ratio {med/p if p else float('nan'):.3f}")
    print(r["position"], r["run"], r["partition"], r["status"], "|", "; ".join(out))
    if r["partition"] in ("time_sliced",) and ts.height > 1:
        bb = bat.filter(pl.col("run") == r["run"]).sort("start_ns")
        prev = None; acc = {}
        m = {t["tenant"]: t["model"] for t in ts.iter_rows(named=True)}
        for x in bb.iter_rows(named=True):
            k = (m[x["tenant"]], x["bucket"], "self" if prev == x["tenant"] else "other")
            acc.setdefault(k, []).append((x["end_ns"] - x["start_ns"]) / 1e3)
            prev = x["tenant"]
        import statistics
        for k, v in sorted(acc.items()):
            p = prof.get((k[0], k[1]))
            print("   after", k, len(v), f"median {statistics.median(v):.1f} / prof {p:.1f} = {statistics.median(v)/p:.3f}")
try:
    sw = pl.read_parquet(f"{d}/solo_switch.parquet")
    print(sw.with_columns((pl.col("after_other_us")/pl.col("after_self_us")).alias("factor")))
except Exception as e:
    print("no switch", e)
