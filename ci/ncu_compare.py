#!/usr/bin/env python3
"""Compare ncu's gpu__time_duration of some kernels with coloc's event and stamp medians.

usage: ncu_compare.py NCU_CSV BENCH_JSON
The coloc figures come from a run without ncu attached (ncu serialises and replays
kernels); ncu's figure is the median over the launches it profiled.
"""
import csv
import json
import statistics
import sys

UNITS = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}
# kernel symbol -> the bench row (kind, shape prefix) that launches it
ROWS = {
    "stress_stream": ("stress_stream", "bytes=1073741824 "),
    "layer_norm_bf16": ("layer_norm", "bf16 "),
    "attention_prefill_bf16_d64": ("attention_prefill", "bf16 "),
    "softmax_bf16": ("softmax", "bf16 "),
}


def main():
    ncu_csv, bench_json = sys.argv[1], sys.argv[2]
    durations = {}
    with open(ncu_csv, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = row["Kernel Name"].split("(")[0].strip()
        value = float(row["Metric Value"].replace(",", "")) * UNITS[row["Metric Unit"]]
        durations.setdefault(name, []).append(value)
    bench = json.load(open(bench_json))
    print(f"{'kernel':30} {'ncu us':>9} {'n':>4} {'event us':>9} {'stamp us':>9} {'ev/ncu':>7} {'st/ncu':>7}")
    ok = True
    for kernel, (kind, prefix) in ROWS.items():
        if kernel not in durations:
            print(f"{kernel:30} not profiled")
            ok = False
            continue
        entry = next((e for e in bench["entries"] if e["kind"] == kind and e["shape"].startswith(prefix)), None)
        if entry is None:
            print(f"{kernel:30} no bench row")
            ok = False
            continue
        n = statistics.median(durations[kernel])
        ev = entry["event_us"]["median"]
        st = entry["stamp_us"]["median"] if entry.get("stamp_us") else float("nan")
        print(f"{kernel:30} {n:9.2f} {len(durations[kernel]):4d} {ev:9.2f} {st:9.2f} {ev / n:7.3f} {st / n:7.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
