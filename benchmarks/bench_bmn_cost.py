"""The boundary-matching layer's cost as T and D grow: measured on the CPU beside the computed bytes,
and the computed memory at the published sizes against one GPU's.

For each (T, D, N) (default T = D in 50 100 200 at N = 8 and 32, plus the THUMOS-like windows: the
embedded config's 64 x 48 at N = 8 and the published 128 x 64 at N = 32), a fresh child process on
one thread builds the fixed sampling weights (common/bmn.py bm_sampling_weights), then runs
BMN.boundary_matching forward and backward (to its input, as in training: the weights are fixed) on
a batch of --batch videos of --channels channels, --repeats times after a warm-up, and reports:
  build s, forward s, backward s  median wall seconds (and the CPU seconds of the process, which
                                  other jobs on the machine slow less);
  weights MB (computed)           bm_weight_bytes: dense (T, N, D, T) float32, and its nonzero share;
  features MB (computed)          bm_feature_bytes: the output (B, C, N, D, T), kept for backward
                                  (its gradient, as large, comes from the 3-D conv: allocated first);
  peak MB over weights + gradient the process's peak resident memory during forward + backward
                                  above its resident memory with the weights and the incoming
                                  gradient allocated (Linux VmHWM, reset through
                                  /proc/self/clear_refs): the layer's own, against the output's bytes;
  build peak MB                   the peak while building the weights (float64 temporaries).
Then the computed bytes at the published sizes (batch 16) against 16 / 24 / 80 GiB GPUs. Writes
OUT/cost.md and OUT/cost.json.

  python benchmarks/bench_bmn_cost.py                       # a few minutes on one thread
  python benchmarks/bench_bmn_cost.py --sizes 100x100x32 --channels 32 --batch 4
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.bmn import BMN, bm_feature_bytes, bm_sampling_weights, bm_weight_bytes  # noqa: E402
from common.config import atomic_write_text  # noqa: E402

MB, GB = 2 ** 20, 2 ** 30  # binary units, as GPUs' memory is sold (a "16 GB" V100 holds 16 GiB)
DEFAULT_SIZES = ["50x50x8", "100x100x8", "200x200x8", "50x50x32", "100x100x32", "200x200x32",
                 "64x48x8", "128x64x32"]
# The published sizes (T, D, N, C = the BM layer's input channels, B): BMN on ActivityNet resizes
# every video to T = D = 100, N = 32, batch 16; its PEM 1-D conv gives hidden_2d = 128 channels in
# PaddleVideo's code, 256 in mmaction2's and the JJBOY port's; the 3-D conv then gives 512 per
# proposal (hidden_3d). THUMOS14: windows of 128 snippets, D = 64 (OpenTAD's BMN THUMOS14 config,
# window_size 128, tscale 128, dscale 64).
PUBLISHED = [("ActivityNet, PaddleVideo (hidden_2d 128)", 100, 100, 32, 128, 16),
             ("ActivityNet, mmaction2 / JJBOY (256)", 100, 100, 32, 256, 16),
             ("THUMOS14 windows 128, D 64 (128)", 128, 64, 32, 128, 16),
             ("THUMOS14 windows 128, D 64 (256)", 128, 64, 32, 256, 16),
             ("embedded ActivityNet-like (anet_synthetic_bmn)", 100, 100, 8, 32, 4),
             ("embedded THUMOS-like (thumos_synthetic_bmn)", 64, 48, 8, 32, 4)]
GPUS = (16, 24, 80)  # GiB: V100-16 / T4 class, RTX 3090 / 4090 / A10 class, A100 / H100 80 GB
HIDDEN_3D = 512


# ---------------------------------------------------------------- one measurement (child process)

def _status(key):
    """A field of /proc/self/status in MB (VmRSS: resident now; VmHWM: its peak)."""
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak():
    """Reset VmHWM to the resident memory now (Linux >= 4.0); False where it can't."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_one(T, D, N, channels, batch, repeats, samples_per_bin=3):
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(batch, channels, T, requires_grad=True)
    _reset_peak()
    rss0 = _status("VmRSS")
    start = time.perf_counter()
    weights = bm_sampling_weights(T, D, N, samples_per_bin)
    build_s = time.perf_counter() - start
    build_peak = _status("VmHWM") - rss0
    layer = SimpleNamespace(sample_weights=weights.view(T, -1), num_samples=N, max_duration=D, temporal_scale=T)
    grad = torch.randn(batch, channels, N, D, T)           # what the 3-D conv's backward hands back
    nonzero = float((weights != 0).float().mean())
    forward, backward, cpu = [], [], []
    peak = None
    for k in range(repeats + 1):                            # k = 0: warm-up
        x.grad = None
        can_reset = _reset_peak()
        base = _status("VmRSS")
        c0, t0 = time.process_time(), time.perf_counter()
        out = BMN.boundary_matching(layer, x)
        t1 = time.perf_counter()
        out.backward(grad)
        t2, c1 = time.perf_counter(), time.process_time()
        if k:
            forward.append(t1 - t0)
            backward.append(t2 - t1)
            cpu.append(c1 - c0)
            if can_reset:
                peak = max(peak or 0.0, _status("VmHWM") - base)
        del out
    return {"T": T, "D": D, "N": N, "channels": channels, "batch": batch, "build_s": build_s,
            "forward_s": statistics.median(forward), "backward_s": statistics.median(backward),
            "cpu_s": statistics.median(cpu), "weights_mb": bm_weight_bytes(T, D, N) / MB, "nonzero": nonzero,
            "features_mb": bm_feature_bytes(batch, channels, T, D, N) / MB, "peak_over_weights_mb": peak,
            "build_peak_mb": build_peak}


# ---------------------------------------------------------------- the tables

def measured_lines(rows):
    lines = ["| T | D | N | build s | forward s | backward s | CPU s (fwd + bwd) | weights MB (computed) | "
             "nonzero | features MB (computed) | peak MB over weights + gradient | build peak MB |",
             "|---" * 12 + "|"]
    for r in rows:
        peak = "" if r["peak_over_weights_mb"] is None else f"{r['peak_over_weights_mb']:.0f}"
        lines.append(f"| {r['T']} | {r['D']} | {r['N']} | {r['build_s']:.2f} | {r['forward_s']:.3f} | "
                     f"{r['backward_s']:.3f} | {r['cpu_s']:.3f} | {r['weights_mb']:.0f} | {100 * r['nonzero']:.2f}% | "
                     f"{r['features_mb']:.0f} | {peak} | {r['build_peak_mb']:.0f} |")
    return lines


def published_rows():
    """Computed bytes of the BM layer at the published sizes: weights (shared by the batch), the BM
    features and their gradient, and the 3-D conv's output (B, 512, D, T) with its gradient."""
    rows = []
    for name, T, D, N, C, B in PUBLISHED:
        weights = bm_weight_bytes(T, D, N)
        features = bm_feature_bytes(B, C, T, D, N)
        conv3d = 2 * B * HIDDEN_3D * D * T * 4
        total = weights + 2 * features + conv3d
        rows.append({"setting": name, "T": T, "D": D, "N": N, "channels": C, "batch": B, "weights_gb": weights / GB,
                     "features_gb": features / GB, "conv3d_gb": conv3d / GB, "total_gb": total / GB,
                     "share": {g: total / (g * GB) for g in GPUS}})
    return rows


def published_lines(rows):
    lines = ["| setting | T | D | N | C | batch | weights GiB | BM features GiB | + their gradient | 3-D conv out + "
             "grad GiB | BM layer total GiB | " + " | ".join(f"share of {g} GiB" for g in GPUS) + " |",
             "|---" * (11 + len(GPUS)) + "|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['T']} | {r['D']} | {r['N']} | {r['channels']} | {r['batch']} | "
                     f"{r['weights_gb']:.3f} | {r['features_gb']:.2f} | {r['features_gb']:.2f} | {r['conv3d_gb']:.2f} | "
                     f"{r['total_gb']:.2f} | " + " | ".join(f"{100 * r['share'][g]:.0f}%" for g in GPUS) + " |")
    return lines


# ---------------------------------------------------------------- main

def parse_size(text):
    try:
        T, D, N = (int(v) for v in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TxDxN, e.g. 100x100x32, got {text!r}") from None
    if not 0 < D <= T or N < 1:
        raise argparse.ArgumentTypeError(f"expected 0 < D <= T and N >= 1, got {text!r}")
    return T, D, N


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[parse_size(s) for s in DEFAULT_SIZES],
                        metavar="TxDxN")
    parser.add_argument("--channels", type=int, default=128, help="the BM layer's input channels (hidden_2d)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="outputs/bench_bmn_cost")
    parser.add_argument("--one", type=parse_size, help=argparse.SUPPRESS)  # the child's one measurement
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(*args.one, args.channels, args.batch, args.repeats)))
        return None
    rows = []
    for T, D, N in args.sizes:  # each in its own process: its peak memory is its own
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", f"{T}x{D}x{N}", "--channels",
                               str(args.channels), "--batch", str(args.batch), "--repeats", str(args.repeats)],
                              env=env, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"error: the measurement of {T}x{D}x{N} failed:\n{proc.stderr}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(measured_lines(rows[-1:])[-1], flush=True)
    published = published_rows()
    text = "\n".join(
        [f"# The BM layer's cost on the CPU (one thread, batch {args.batch}, {args.channels} channels, median of "
         f"{args.repeats})", ""] + measured_lines(rows)
        + ["", "# Computed at the published sizes (float32; weights shared by the batch)", ""]
        + published_lines(published)) + "\n"
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "cost.md"), text)
    atomic_write_text(os.path.join(args.out, "cost.json"),
                      json.dumps({"measured": rows, "published": published}, indent=1) + "\n")
    print("\n" + text + f"\nwrote {os.path.join(args.out, 'cost.md')}")
    return text


if __name__ == "__main__":
    main()
