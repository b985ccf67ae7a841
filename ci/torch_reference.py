#!/usr/bin/env python3
"""The PyTorch reference for coloc's shipped models, run on the GPU machine where PyTorch is:

    python3 ci/torch_reference.py --out torch.json [--batch 1,8,32] [--reps 50]

Each model is built as production inference runs it: random weights, bf16, eval mode, CUDA
graphs, cuDNN autotuning, channels-last images, scaled-dot-product attention. The CNNs and ViT are
torchvision's, BERT-base is transformers' (with its pooler, sequence 128), GPT-2 is one decode step
over a KV cache of 512 tokens written out with GPT-2 small's shapes (transformers' cache objects
do not capture into a CUDA graph). Like coloc's graphs, every classifier ends in a softmax.
Times are the median GPU time of a graph replay between CUDA events, as `coloc models run`
reports. `coloc models compare torch.json` times coloc's graphs the same way and prints the
ratios.
"""

import argparse
import json
import math

import torch
import torch.nn.functional as F
from torch import nn

DTYPE = torch.bfloat16


class Classifier(nn.Module):
    """A torchvision model followed by a softmax, as coloc's model graphs end."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return torch.softmax(self.body(x), dim=-1)


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        # transformers' default attention is scaled-dot-product (fused) attention
        self.bert = BertModel(BertConfig(), add_pooling_layer=True)

    def forward(self, ids):
        return self.bert(input_ids=ids, token_type_ids=torch.zeros_like(ids)).pooler_output


class Gpt2Decode(nn.Module):
    """One decode step of GPT-2 small over a KV cache holding `context` tokens."""

    def __init__(self, batch, context=512, max_context=1024, layers=12, dim=768, heads=12, vocab=50257):
        super().__init__()
        self.context, self.heads, self.head_dim = context, heads, dim // heads
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(max_context, dim)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "ln_1": nn.LayerNorm(dim),
                    "qkv": nn.Linear(dim, 3 * dim),
                    "out": nn.Linear(dim, dim),
                    "ln_2": nn.LayerNorm(dim),
                    "fc": nn.Linear(dim, 4 * dim),
                    "proj": nn.Linear(4 * dim, dim),
                }
            )
            for _ in range(layers)
        )
        self.ln_f = nn.LayerNorm(dim)
        shape = (layers, batch, heads, max_context, self.head_dim)
        self.register_buffer("k_cache", torch.randn(shape) * 0.5)
        self.register_buffer("v_cache", torch.randn(shape) * 0.5)

    def forward(self, ids):
        b, pos = ids.shape[0], self.context
        x = self.wte(ids) + self.wpe.weight[pos]
        for i, blk in enumerate(self.blocks):
            q, k, v = blk["qkv"](blk["ln_1"](x)).view(b, 1, 3, self.heads, self.head_dim).unbind(2)
            self.k_cache[i, :, :, pos] = k[:, 0]
            self.v_cache[i, :, :, pos] = v[:, 0]
            keys, values = self.k_cache[i, :, :, : pos + 1], self.v_cache[i, :, :, : pos + 1]
            a = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values)
            x = x + blk["out"](a.transpose(1, 2).reshape(b, 1, -1))
            x = x + blk["proj"](F.gelu(blk["fc"](blk["ln_2"](x)), approximate="tanh"))
        return F.linear(self.ln_f(x), self.wte.weight)


def build(name, batch):
    """The model and one input batch for it, on the GPU in bf16."""
    import torchvision

    image = lambda: torch.randn(batch, 3, 224, 224, device="cuda", dtype=DTYPE).to(memory_format=torch.channels_last)
    if name in ("resnet50", "resnet18", "mobilenet_v2", "vgg16"):
        model = Classifier(getattr(torchvision.models, name)(weights=None)).to(memory_format=torch.channels_last)
        x = image()
    elif name == "vit_b16":
        model, x = Classifier(torchvision.models.vit_b_16(weights=None)), image()
    elif name == "bert_base":
        model, x = Bert(), torch.randint(0, 30522, (batch, 128), device="cuda")
    elif name == "gpt2_decode":
        model, x = Gpt2Decode(batch), torch.randint(0, 50257, (batch, 1), device="cuda")
    else:
        raise SystemExit(f"unknown model {name}")
    return model.to("cuda", DTYPE).eval(), x


def quantile(sorted_values, q):
    pos = q * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@torch.inference_mode()
def time_model(name, batch, reps):
    model, x = build(name, batch)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up outside the graph: cuDNN autotuning, lazy init
            model(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = model(x)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        graph.replay()
    times = []
    for _ in range(reps):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    finite = bool(torch.isfinite(out.float()).all())
    del model, x, graph, out
    torch.cuda.empty_cache()
    return {
        "model": name,
        "batch": batch,
        "median_ms": quantile(times, 0.5),
        "p05_ms": quantile(times, 0.05),
        "p95_ms": quantile(times, 0.95),
        "reps": reps,
        "output_finite": finite,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--batch", default="1,8,32")
    p.add_argument("--reps", type=int, default=50)
    p.add_argument(
        "--models", default="resnet50,resnet18,mobilenet_v2,vgg16,bert_base,vit_b16,gpt2_decode"
    )
    a = p.parse_args()
    torch.backends.cudnn.benchmark = True
    doc = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "results": [],
        "failed": [],
    }
    for name in a.models.split(","):
        for batch in (int(b) for b in a.batch.split(",")):
            try:
                r = time_model(name, batch, a.reps)
            except Exception as e:  # one model that fails must not lose the others
                print(f"{name:14s} b{batch:<3d} FAILED: {e}", flush=True)
                doc["failed"].append({"model": name, "batch": batch, "error": str(e)})
                continue
            print(f"{name:14s} b{batch:<3d} {r['median_ms']:8.3f} ms (p95 {r['p95_ms']:.3f})", flush=True)
            doc["results"].append(r)
            # written after every model: a run cut short keeps what it measured
            with open(a.out, "w") as f:
                json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
