#!/usr/bin/env python3
"""What production kernels reach at the shapes of `coloc kernels bench`'s two fraction targets
(issue 8), on the GPU machine where PyTorch is installed:

    python3 ci/torch_attainable.py --out attainable.json

- the bf16 matrix ceiling as PyTorch reaches it (cuBLAS, square GEMMs of 4096-16384, best);
- attention prefill, bf16, 12 heads of 64, not causal, at the attention target's (batch, seq),
  through every backend of `scaled_dot_product_attention` that accepts the shape (FlashAttention,
  cuDNN's fused attention, memory-efficient);
- VGG-16's 3x3 convolutions at batch 32, bf16, channels-last, with cuDNN's autotuner on (timed
  trials of every algorithm, which coloc does not do), without and with the bias.

Each operator is captured `--per-graph` times back to back in one CUDA graph, and the graph is
replayed `--reps` times between CUDA events: the median replay divided by `--per-graph` is the
time of one call with launch overhead amortised, the most favourable time there is. One call
alone in a graph is timed as well (what a single launch shows). Rates count the useful FLOPs:
4*b*h*s^2*d for attention, 2*N*H*W*K*C*9 for a convolution.
"""

import argparse
import json
import statistics

ATTENTION_SHAPES = [(8, 128), (16, 256), (8, 512)]
HEADS, HEAD_DIM = 12, 64
VGG_LAYERS = [(224, 64), (112, 128), (56, 256), (28, 512), (14, 512)]
VGG_BATCH = 32


def time_graph(torch, fn, per_graph, reps):
    """Median time of one call of `fn`, us: `per_graph` calls captured in a graph, replayed."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(per_graph):
            fn()
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / per_graph)
    return statistics.median(times)


def ceiling(torch, reps):
    best = 0.0
    rows = []
    for n in (4096, 8192, 16384):
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        us = time_graph(torch, lambda: torch.matmul(a, b), 4, reps)
        tflops = 2 * n**3 / us / 1e6
        rows.append({"n": n, "us": us, "tflops": tflops})
        best = max(best, tflops)
        del a, b
    return best, rows


def attention(torch, per_graph, reps, ceiling_tflops):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    backends = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
    }
    rows = []
    for batch, seq in ATTENTION_SHAPES:
        q, k, v = (torch.randn(batch, HEADS, seq, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flops = 4 * batch * HEADS * seq * seq * HEAD_DIM
        for name, backend in backends.items():
            row = {"batch": batch, "seq": seq, "heads": HEADS, "head_dim": HEAD_DIM, "backend": name}
            try:
                with sdpa_kernel([backend]):
                    fn = lambda: F.scaled_dot_product_attention(q, k, v)  # noqa: E731
                    amortised = time_graph(torch, fn, per_graph, reps)
                    single = time_graph(torch, fn, 1, reps)
                row.update(
                    amortised_us=amortised,
                    single_us=single,
                    tflops=flops / amortised / 1e6,
                    fraction=flops / amortised / 1e6 / ceiling_tflops,
                    single_fraction=flops / single / 1e6 / ceiling_tflops,
                )
            except RuntimeError as e:  # a backend that does not take the shape says so
                row["error"] = str(e).splitlines()[0][:200]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def convolutions(torch, per_graph, reps, ceiling_tflops):
    rows = []
    for hw, c in VGG_LAYERS:
        x = torch.randn(VGG_BATCH, c, hw, hw, device="cuda", dtype=torch.bfloat16).to(
            memory_format=torch.channels_last
        )
        for bias in (False, True):
            conv = (
                torch.nn.Conv2d(c, c, 3, padding=1, bias=bias)
                .to("cuda", torch.bfloat16)
                .to(memory_format=torch.channels_last)
                .eval()
            )
            with torch.inference_mode():
                amortised = time_graph(torch, lambda: conv(x), per_graph, reps)
            flops = 2 * VGG_BATCH * hw * hw * c * c * 9
            row = {
                "batch": VGG_BATCH,
                "hw": hw,
                "channels": c,
                "bias": bias,
                "amortised_us": amortised,
                "tflops": flops / amortised / 1e6,
                "fraction": flops / amortised / 1e6 / ceiling_tflops,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--per-graph", type=int, default=20)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()

    import torch

    torch.backends.cudnn.benchmark = True
    best, gemm_rows = ceiling(torch, args.reps)
    print(f"bf16 matrix ceiling (PyTorch's best square GEMM): {best:.0f} TFLOP/s", flush=True)
    out = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "device": torch.cuda.get_device_name(),
        "per_graph": args.per_graph,
        "reps": args.reps,
        "gemm_ceiling_tflops": best,
        "gemm": gemm_rows,
        "attention": attention(torch, args.per_graph, args.reps, best),
        "convolutions": convolutions(torch, args.per_graph, args.reps, best),
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
