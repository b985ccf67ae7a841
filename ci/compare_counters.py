#!/usr/bin/env python3
"""Solo utilisations of two counter datasets side by side (repeatability of `--ncu`):

    python3 ci/compare_counters.py DIR_A DIR_B

For each (model, batch): the kernel-time-weighted mean L2 and DRAM throughput (percent of peak),
as `coloc evaluate --counters` computes them, from each dataset's solo_counters.parquet, and
their difference. Needs polars.
"""

import sys

import polars as pl

DUR = "gpu__time_duration.sum"
L2 = "lts__throughput.avg.pct_of_peak_sustained_elapsed"
DRAM = "dram__throughput.avg.pct_of_peak_sustained_elapsed"


def utilisations(directory):
    c = pl.read_parquet(f"{directory}/solo_counters.parquet")
    w = c.pivot(values="value", index=["model", "batch", "op", "node"], on="metric", aggregate_function="first")
    return w.group_by(["model", "batch"]).agg(
        ((pl.col(DUR) * pl.col(L2)).sum() / pl.col(DUR).sum()).alias("l2"),
        ((pl.col(DUR) * pl.col(DRAM)).sum() / pl.col(DUR).sum()).alias("dram"),
        (pl.col(DUR).sum() / 1e3).alias("kernel_us"),
    )


def main():
    a, b = sys.argv[1], sys.argv[2]
    j = utilisations(a).join(utilisations(b), on=["model", "batch"], suffix="_b").sort(["model", "batch"])
    print(f"A = {a}\nB = {b}\n")
    print(f"{'model':14} {'batch':>5}  {'L2 % A':>7} {'L2 % B':>7} {'diff':>6}  {'DRAM % A':>8} {'DRAM % B':>8} {'diff':>6}  {'kernel us A':>11} {'B':>8}")
    worst = 0.0
    for r in j.iter_rows(named=True):
        dl2, ddram = r["l2_b"] - r["l2"], r["dram_b"] - r["dram"]
        worst = max(worst, abs(dl2), abs(ddram))
        print(
            f"{r['model']:14} {r['batch']:>5}  {r['l2']:7.2f} {r['l2_b']:7.2f} {dl2:+6.2f}  {r['dram']:8.2f} {r['dram_b']:8.2f} {ddram:+6.2f}  {r['kernel_us']:11.1f} {r['kernel_us_b']:8.1f}"
        )
    print(f"\nlargest difference: {worst:.2f} percentage points of peak")


if __name__ == "__main__":
    main()
