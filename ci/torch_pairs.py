#!/usr/bin/env python3
"""Pairs of PyTorch processes back to back under MPS, the reference for coloc's interference:

    python3 ci/torch_pairs.py --out torch-pairs.json [--pairs resnet50+bert_base,...]
        [--batch 32] [--mps 50,100] [--seconds 3]

Each model runs in a process of its own, built as `ci/torch_reference.py` builds it (bf16, eval,
cuDNN autotuning, one CUDA graph), and replays its graph back to back: a closed loop of one
client with no think time, each replay timed between CUDA events. A model is first timed alone
(no MPS: the whole GPU); then each pair runs concurrently under an MPS daemon this script starts
(its own pipe and log directories) with both processes at the same active-thread percentage.
Both processes build and capture first, then start together; the first half second of replays
is dropped. The slowdown of a model is its median replay time beside the other over its median
alone. The daemon is shut down on every way out. `coloc measure suites/torch-pairs.toml` runs
the same pairs in coloc, and `coloc models compare-pairs` sets the two side by side.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

WARMUP_S = 0.5


def worker(model_name, batch, seconds, sync_dir, out):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_reference import build, quantile

    torch.backends.cudnn.benchmark = True
    with torch.inference_mode():
        model, x = build(model_name, batch)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(x)
        for _ in range(3):
            graph.replay()
        torch.cuda.synchronize()
        open(os.path.join(sync_dir, f"ready-{os.getpid()}"), "w").close()
        go = os.path.join(sync_dir, "go")
        while not os.path.exists(go):
            time.sleep(0.001)
        with open(go) as f:
            start_at = float(f.read())
        while time.time() < start_at:
            pass
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        while time.time() < start_at + seconds:
            t = time.time()
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            if t >= start_at + WARMUP_S:
                times.append(start.elapsed_time(end))
    times.sort()
    with open(out, "w") as f:
        json.dump(
            {
                "model": model_name,
                "batch": batch,
                "replays": len(times),
                "median_ms": quantile(times, 0.5),
                "p95_ms": quantile(times, 0.95),
            },
            f,
        )


def run_group(models, batch, seconds, env_extra):
    """Runs `models` concurrently, one process each; returns their results in order."""
    with tempfile.TemporaryDirectory() as sync_dir:
        env = dict(os.environ, **env_extra)
        outs = [os.path.join(sync_dir, f"out-{i}.json") for i in range(len(models))]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", m, str(batch), str(seconds), sync_dir, o], env=env
            )
            for m, o in zip(models, outs)
        ]
        try:
            deadline = time.time() + 300
            while sum(f.startswith("ready-") for f in os.listdir(sync_dir)) < len(models):
                if any(p.poll() not in (None, 0) for p in procs) or time.time() > deadline:
                    raise RuntimeError(f"{models}: a worker failed or never got ready")
                time.sleep(0.01)
            tmp = os.path.join(sync_dir, "go.tmp")
            with open(tmp, "w") as f:
                f.write(repr(time.time() + 0.2))
            os.rename(tmp, os.path.join(sync_dir, "go"))
            for p in procs:
                if p.wait(timeout=seconds + 120) != 0:
                    raise RuntimeError(f"{models}: a worker exited with {p.returncode}")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        results = []
        for o in outs:
            with open(o) as f:
                results.append(json.load(f))
        return results


class MpsDaemon:
    """An MPS control daemon with its own pipe and log directories, shut down on exit."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="torch-pairs-mps-")
        self.env = {
            "CUDA_MPS_PIPE_DIRECTORY": os.path.join(self.dir, "pipe"),
            "CUDA_MPS_LOG_DIRECTORY": os.path.join(self.dir, "log"),
        }
        for d in self.env.values():
            os.makedirs(d)
        subprocess.run(["nvidia-cuda-mps-control", "-d"], env=dict(os.environ, **self.env), check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(
            ["nvidia-cuda-mps-control"], input=b"quit\n", env=dict(os.environ, **self.env), check=False
        )
        time.sleep(0.5)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", nargs=5, metavar=("MODEL", "BATCH", "SECONDS", "SYNC_DIR", "OUT"))
    p.add_argument("--out")
    p.add_argument("--pairs", default="resnet50+bert_base,vgg16+vit_b16,mobilenet_v2+gpt2_decode")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--mps", default="50,100", help="active-thread percentages, both processes alike")
    p.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    if a.worker:
        m, b, s, d, o = a.worker
        worker(m, int(b), float(s), d, o)
        return
    if not a.out:
        p.error("--out is required")
    import torch

    pairs = [tuple(g.split("+")) for g in a.pairs.split(",")]
    doc = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "batch": a.batch,
        "seconds": a.seconds,
        "solo": [],
        "pairs": [],
    }

    def save():
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)

    solo = {}
    for m in sorted({m for pair in pairs for m in pair}):
        (r,) = run_group([m], a.batch, a.seconds, {})
        solo[m] = r
        doc["solo"].append(r)
        print(f"solo {m:14s} b{a.batch}: {r['median_ms']:.3f} ms over {r['replays']} replays", flush=True)
        save()
    for percent in (int(x) for x in a.mps.split(",")):
        with MpsDaemon() as mps:
            for pair in pairs:
                env = dict(mps.env, CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=str(percent))
                results = run_group(list(pair), a.batch, a.seconds, env)
                for r in results:
                    alone = solo[r["model"]]["median_ms"]
                    r["solo_median_ms"] = alone
                    r["slowdown"] = r["median_ms"] / alone
                    r["slowdown_p95"] = r["p95_ms"] / alone
                doc["pairs"].append({"models": list(pair), "mps_percent": percent, "tenants": results})
                text = ", ".join(f"{r['model']} x{r['slowdown']:.2f} (p95 x{r['slowdown_p95']:.2f})" for r in results)
                print(f"mps {percent}/{percent}: {text}", flush=True)
                save()


if __name__ == "__main__":
    main()
