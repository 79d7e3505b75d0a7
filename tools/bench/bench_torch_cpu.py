"""CPU peer of `vjepa-vk bench` (the CPU variant of shared/baseline/bench_torch.py): one full training step
of the V-JEPA 2-AC predictor (tools/fixtures/torch_ac.py: teacher forcing + rollout, L1 on layer-normed
targets, backward, optimizer step) in fp32 on the CPU with torch.set_num_threads(2), LoRA on qkv, proj,
fc1 and fc2 written out by hand (Debian has no peft): y = W·x + b + (alpha/r)·B·(A·x) with A
Kaiming-uniform and B zero, as PEFT initialises them, the base weights frozen; AdamW(foreach=True) on the
adapters. Prints one JSON line per configuration, with the fields of `vjepa-vk bench --json` it shares.

A dev tool, never a dependency of the product. Debian's python3-torch multiplies with whatever
libblas.so.3 resolves to; select OpenBLAS (apt-get install libopenblas0-openmp) for this process only,
without touching the system-wide alternative:

  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp python3 tools/bench/bench_torch_cpu.py --preset t4

Presets are the configurations of tools/bench/cpu_compare.sh (demo: configs/demo.yaml's model; t2, t4,
t8: depth 4, width 512, 8 heads, 16×16 grid, encoder width 1408, B=1, r 16, alpha 32, T frames).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from torch_ac import ACPredictor, training_losses  # noqa: E402

PRESETS = {
    "demo": dict(embed=64, dim=96, depth=2, heads=2, grid=4, T=4, B=2, r=4, alpha=8),
    "t2": dict(embed=1408, dim=512, depth=4, heads=8, grid=16, T=2, B=1, r=16, alpha=32),
    "t4": dict(embed=1408, dim=512, depth=4, heads=8, grid=16, T=4, B=1, r=16, alpha=32),
    "t8": dict(embed=1408, dim=512, depth=4, heads=8, grid=16, T=8, B=1, r=16, alpha=32),
}
TARGETS = ("qkv", "proj", "fc1", "fc2")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable rank-r adapter, scaled alpha/r (no dropout, rsLoRA off)."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.A.t() @ self.B.t()) * self.scale


def add_lora(model, r, alpha):
    for p in model.parameters():
        p.requires_grad_(False)
    for mod in list(model.modules()):
        for name in TARGETS:
            child = getattr(mod, name, None)
            if isinstance(child, nn.Linear):
                setattr(mod, name, LoRALinear(child, r, alpha))
    return model


def blas_library():
    """The libblas.so.3 this process loaded, from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "libblas.so" in line or "libopenblas" in line:
                    return line.split()[-1]
    except OSError:
        pass
    return None


def run(cfg, steps, warmup):
    torch.manual_seed(0)
    T, B, grid = cfg["T"], cfg["B"], cfg["grid"]
    tpf = grid * grid
    m = add_lora(ACPredictor(embed_dim=cfg["embed"], dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"], grid=grid),
                 cfg["r"], cfg["alpha"])
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.04, foreach=True)
    z = torch.randn(B, T * tpf, cfg["embed"])
    a = torch.randn(B, T - 1, 7)
    s = torch.randn(B, T, 7)
    auto = min(2, T - 1)

    def step():
        h = F.layer_norm(z, (cfg["embed"],))
        jloss, sloss, _, _ = training_losses(m, h, a, s, tpf, auto_steps=auto)
        loss = jloss + sloss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    return dict(T=T, B=B, step_s_median=round(med, 4), step_s_min=round(times[0], 4),
                clips_per_s=round(B / med, 2), trainable=sum(p.numel() for p in params), loss=float(loss))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS), help="configurations to run (default: all)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = dict(torch=torch.__version__, threads=torch.get_num_threads(), blas=blas_library(),
                sdpa=hasattr(F, "scaled_dot_product_attention"))
    print(json.dumps(info), flush=True)
    for name in args.preset or list(PRESETS):
        out = dict(preset=name, **run(PRESETS[name], args.steps, args.warmup))
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
