"""Benchmark: this project's detector against the public ActionFormer package (not a test).

Trains both on the same labeled videos of the embedded dataset, with the same config and seed, and
scores both with our mAP (common/metrics.py, through evaluate.py) on the test videos:
  ours          train_supervised.py + evaluate.py with model.alqa=none and acp.mode=none
                (plain ActionFormer; the ICD discriminator still trains beside it, see below);
  ActionFormer  the `actionformer` package from PyPI, version 1.5.0, in its own virtual
                environment beside torch==2.13.0 (installed by this script on first use), trained
                by benchmarks/actionformer_driver.py: the package's model, losses, optimiser,
                schedule, EMA and Soft-NMS driven from a small CPU loop (its train.py needs CUDA).
Prints one Markdown table, mAP@0.3..0.7, average and training seconds per iteration (wall time of
the epoch loops over their iterations, evaluation excluded), and the ratios. Where the package
cannot be installed it says so in one line and exits 0. Finished runs under --out are reused.

Our config (configs/default.yaml + the two overrides) is mapped onto the package's config value by
value (`actionformer_config`); what cannot be mapped is printed under the table. Both convert
between seconds and the feature grid with t = (g * feat_stride + num_frames / 2) / fps, clamped to
the video, so their predictions are scored on the same time axis.

  python benchmarks/bench_actionformer.py                        # 100% labeled, 26 min on one loaded CPU thread
  python benchmarks/bench_actionformer.py --ratio 10 --epochs 2  # a quick end-to-end check
  python benchmarks/bench_actionformer.py --ratio 10 --preset hard --seeds 0 1 2   # a difficulty preset, 3 seeds
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.config import load_config  # noqa: E402
from common.data import load_features, time_to_grid  # noqa: E402
from common.stage import eval_ids, labeled_ids, load_data  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PRESET_NAMES, mean_std, preset_sets  # noqa: E402
from synthetic.make import make_data  # noqa: E402

PACKAGE = "actionformer==1.5.0"
DRIVER = os.path.join(ROOT, "benchmarks", "actionformer_driver.py")
# What the package needs at run time (its sdist declares more); torch first, from the same release.
INSTALL = (["torch==2.13.0"], ["numpy", "pandas", "pyyaml", "joblib", "h5py", "wheel"],
           ["--no-deps", "--no-build-isolation", PACKAGE])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--ratio", type=int, default=100,
                        help="labeled percentage: 100 (every training video) or 10, 20, 40, 60")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override train.epochs (after warmup) for both, e.g. 2 for a quick check")
    parser.add_argument("--preset", default="small", choices=PRESET_NAMES,
                        help="the embedded dataset's preset (synthetic/thumos_like.py; small is the default config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="seeds of both detectors; with several, the mean and spread are printed last")
    parser.add_argument("--out", default="outputs/bench_actionformer")
    parser.add_argument("--af-venv", default="outputs/actionformer_venv",
                        help="virtual environment of the package (created here when it lacks it)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda, for both detectors")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP/MKL threads of both training processes (default: the environment's)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- the package's environment

def ensure_package(venv, log_path):
    """The package's python, installing it when missing; None (and why) where it cannot be had."""
    python = os.path.join(venv, "bin", "python")
    check = [python, "-c", "import actionformer; assert actionformer.__version__ == '1.5.0'"]
    if os.path.exists(python) and subprocess.run(check, capture_output=True).returncode == 0:
        return python, None
    print(f"installing {PACKAGE} (and torch==2.13.0) into {venv}: once, about a minute", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "w") as log:
        steps = [[sys.executable, "-m", "venv", venv]] if not os.path.exists(python) else []
        steps += [[python, "-m", "pip", "install"] + pkgs for pkgs in INSTALL]
        for cmd in steps:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                return None, f"`{' '.join(cmd[2:])}` failed (exit {proc.returncode}; log {log_path})"
    if subprocess.run(check, capture_output=True).returncode != 0:
        return None, f"installed, but `import actionformer` (1.5.0) fails (log {log_path})"
    return python, None


def has_cpp_nms(python):
    """Whether the package's NMS extension (nms_1d_cpu) built; without it the package falls back to Python."""
    code = "import actionformer.utils.nms as n, sys; sys.exit(0 if n.HAS_CPP_NMS else 1)"
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


# ---------------------------------------------------------------- our config -> the package's

def window_multiple(strides, window):
    """The package pads to a multiple of stride * (window - 1) on every level (its local attention)."""
    return max(s * (window // 2) * 2 if window > 1 else s for s in strides)


def actionformer_config(cfg, num_classes, longest_test):
    """The package's config (its YAML layout) from ours, and notes on what could not be mapped."""
    d, m, lo, t, te = cfg["dataset"], cfg["model"], cfg["loss"], cfg["train"], cfg["test"]
    strides = [2 ** i for i in range(m["branch_layers"] + 1)]
    multiple = window_multiple(strides, m["attn_window"])
    seq_len = -(-d["max_seq_len"] // multiple) * multiple
    padded_test = -(-longest_test // multiple) * multiple
    af = {
        "init_rand_seed": cfg["seed"], "dataset_name": d["name"], "devices": ["cpu"],
        "model_name": "LocPointTransformer",
        "dataset": {"feat_stride": d["feat_stride"], "num_frames": d["num_frames"],
                    "default_fps": d["default_fps"], "input_dim": d["feature_dim"], "num_classes": num_classes,
                    "downsample_rate": 1, "max_seq_len": seq_len, "trunc_thresh": d["trunc_thresh"],
                    "crop_ratio": None, "force_upsampling": False},
        "loader": {"batch_size": t["batch_size"], "num_workers": t["num_workers"]},
        "model": {"backbone_type": "convTransformer", "fpn_type": "identity",
                  "backbone_arch": [m["embd_layers"], m["stem_layers"], m["branch_layers"]],
                  "scale_factor": 2, "regression_range": [list(r) for r in m["regression_range"]],
                  "n_head": m["n_head"], "n_mha_win_size": m["attn_window"],
                  "embd_kernel_size": m["embd_kernel_size"], "embd_dim": m["embd_dim"], "embd_with_ln": True,
                  "fpn_dim": m["embd_dim"], "fpn_with_ln": True, "fpn_start_level": 0,
                  "head_dim": m["head_dim"], "head_kernel_size": m["head_kernel_size"],
                  "head_num_layers": m["head_layers"], "head_with_ln": True,
                  "max_buffer_len_factor": max(6.0, float(math.ceil(padded_test / seq_len))),
                  "use_abs_pe": False, "use_rel_pe": False},
        "train_cfg": {"center_sample": "radius", "center_sample_radius": m["center_radius"],
                      "loss_weight": lo["reg_weight"], "cls_prior_prob": m["prior_prob"],
                      "init_loss_norm": lo["init_loss_norm"], "clip_grad_l2norm": t["clip_grad"],
                      "head_empty_cls": [], "dropout": m["dropout"], "droppath": m["path_drop"],
                      "label_smoothing": 0.0},
        "test_cfg": {"pre_nms_thresh": te["pre_nms_thresh"], "pre_nms_topk": te["pre_nms_topk"],
                     "iou_threshold": 0.1, "min_score": te["min_score"], "max_seg_num": te["max_segments"],
                     "nms_method": "soft", "nms_sigma": te["nms_sigma"], "duration_thresh": te["duration_thresh"],
                     "multiclass_nms": not d["class_agnostic"], "ext_score_file": None,
                     "voting_thresh": te["voting_iou"] if te["voting"] else 0.0},
        "opt": {"type": "AdamW", "momentum": 0.9, "weight_decay": t["weight_decay"], "learning_rate": t["lr"],
                "epochs": t["epochs"], "warmup": t["warmup_epochs"] > 0, "warmup_epochs": t["warmup_epochs"],
                "schedule_type": "cosine", "schedule_steps": [], "schedule_gamma": 0.1},
    }
    notes = [
        f"max_seq_len: the package's window-{m['window']} attention over strides up to {strides[-1]} needs "
        f"lengths divisible by {multiple}, so its model is built with max_seq_len {seq_len}; crops are still "
        f"{d['max_seq_len']} steps (done by the driver), and the package pads every training batch to "
        f"{seq_len} steps where ours pads to the longest video of the batch (rounded up to {strides[-1]})",
        "EMA: the package's ModelEma is a plain decay-{} average; ours ramps the decay up as "
        "min(decay, (1 + step) / (10 + step)) (common/engine.py). The row without EMA shows what that "
        "costs it".format(t["ema_decay"]),
        "lr schedule: the package's warmup starts at lr 0 and its cosine ends at 1e-8 (ours starts at "
        "lr / warmup iterations and ends at 0)",
        "ours trains the ICD discriminator beside the detector (its loss reaches only the ICD), which "
        "the package has no counterpart of: part of our s/iter",
        "the crop rule is the package's (an action stays when >= trunc_thresh of it lies in the window "
        "widened by half a clip, 200 tries), with our window draws",
    ]
    if (lo["focal_alpha"], lo["focal_gamma"]) != (0.25, 2.0):
        notes.append(f"focal alpha/gamma {lo['focal_alpha']}/{lo['focal_gamma']}: the package fixes "
                     "0.25/2.0 and was trained with those")
    if m["head_layers"] < 2 or m["embd_layers"] < 1:
        notes.append("head_layers / embd_layers below the package's minimum were passed as they are")
    return af, notes


def video_items(videos, ids, dcfg):
    """The job's view of videos: feature file and ground truth in grid units (our time_to_grid)."""
    items = []
    for vid in ids:
        v = videos[vid]
        segs = time_to_grid(v.segments, v.fps, dcfg["feat_stride"], dcfg["num_frames"])
        items.append({"video_id": vid, "features": os.path.abspath(os.path.join(dcfg["feature_dir"], f"{vid}.npy")),
                      "segments": segs.tolist(), "labels": v.labels.tolist(),
                      "fps": v.fps, "duration": v.duration})
    return items


# ---------------------------------------------------------------- runs

def run(cmd, log_path, env):
    """A subprocess with its output in log_path; exits with the log's tail when it fails."""
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        sys.stderr.write("".join(open(log_path).readlines()[-20:]))
        raise SystemExit(f"{os.path.basename(cmd[1])} failed (exit {proc.returncode}; log {log_path})")


def score(predictions, metrics_path, common, env):
    """Our evaluate.py on a results file (any detector's) -> its metrics dict."""
    if not os.path.exists(metrics_path):
        run([sys.executable, "evaluate.py"] + common + ["--predictions", predictions, "--json", metrics_path,
                                                         "--no-per-class"],
            metrics_path.replace(".json", ".log"), env)
    return json.load(open(metrics_path))


def run_ours(out, common, env):
    """train_supervised.py + evaluate.py; s/iter from log.jsonl."""
    done = os.path.join(out, "done")
    if not os.path.exists(done):
        os.makedirs(out, exist_ok=True)
        run([sys.executable, "train_supervised.py"] + common + ["--out", out, "--resume"],
            os.path.join(out, "train.log"), env)
        open(done, "w").close()
    metrics_path = os.path.join(out, "metrics.json")
    if not os.path.exists(metrics_path):
        run([sys.executable, "evaluate.py"] + common + [
            "--checkpoint", os.path.join(out, "last.pt"), "--out", os.path.join(out, "predictions.json"),
            "--json", metrics_path, "--no-per-class"], os.path.join(out, "evaluate.log"), env)
    log = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
    seconds, iters = sum(e["seconds"] for e in log), sum(e["iters"] for e in log)
    return {"metrics": json.load(open(metrics_path)), "s_per_iter": seconds / iters, "iters": iters}


def run_actionformer(out, python, job, args, common, env):
    """The driver in the package's environment, then our evaluate.py on its predictions."""
    timing_path = os.path.join(out, "timing.json")
    if not os.path.exists(timing_path):
        os.makedirs(out, exist_ok=True)
        job_path = os.path.join(out, "job.json")
        with open(job_path, "w") as f:
            json.dump(job, f)
        cmd = [python, DRIVER, "--job", job_path, "--out", out, "--device", args.device]
        run(cmd + (["--threads", str(args.threads)] if args.threads else []), os.path.join(out, "train.log"), env)
    timing = json.load(open(timing_path))
    return {"metrics": score(os.path.join(out, "predictions.json"), os.path.join(out, "metrics.json"), common, env),
            "metrics_raw": score(os.path.join(out, "predictions_raw.json"), os.path.join(out, "metrics_raw.json"),
                                 common, env),
            "s_per_iter": timing["seconds_per_iter"], "iters": timing["iters"]}


def print_table(rows, ours, theirs, title, notes):
    thr = ours["metrics"]["thresholds"]
    print(f"\n{title}")
    print("| detector | " + " | ".join(f"mAP@{t:g}" for t in thr) + " | avg | s/iter |")
    print("|---" * (len(thr) + 3) + "|")
    for name, m, s in rows:
        print(f"| {name} | " + " | ".join(f"{100 * x:.2f}" for x in m["mAP"])
              + f" | {100 * m['average']:.2f} | {s} |")
    diff = [100 * (a - b) for a, b in zip(ours["metrics"]["mAP"], theirs["metrics"]["mAP"])]
    avg = 100 * (ours["metrics"]["average"] - theirs["metrics"]["average"])
    print(f"\nours / ActionFormer s/iter: {ours['s_per_iter'] / theirs['s_per_iter']:.2f}; "
          f"mAP ours - ActionFormer: avg {avg:+.2f} points ("
          + ", ".join(f"@{t:g} {x:+.2f}" for t, x in zip(thr, diff)) + ")")
    print("\nNot mapped, or mapped with a difference:")
    print("\n".join(f"- {n}" for n in notes))


def compare(args, python, env, seed):
    """Both detectors on one preset and seed; prints their table and returns both results."""
    out = os.path.join(args.out, ("" if args.preset == "small" else f"{args.preset}_") + f"labeled{args.ratio}"
                       + (f"_epochs{args.epochs}" if args.epochs else "") + (f"_seed{seed}" if seed else ""))

    # 2. One config for both: ours with plain ActionFormer, mapped onto the package's.
    sets = preset_sets(args.preset, args.ratio) + ["model.alqa=none", "acp.mode=none", f"seed={seed}"]
    if args.ratio == 100:
        sets += ["dataset.labeled_split=null", "dataset.unlabeled_split=null"]
    sets += [f"train.epochs={args.epochs}"] if args.epochs else []
    cfg = load_config(args.config, sets)
    make_data(cfg)  # the embedded dataset and its splits, as python -m synthetic makes them
    videos, classes = load_data(cfg)
    train_ids, test_ids = labeled_ids(cfg, videos), eval_ids(cfg, videos)
    longest = max(load_features(cfg["dataset"], v).shape[0] for v in test_ids)
    af_cfg, notes = actionformer_config(cfg, len(classes), longest)
    notes.append("Soft-NMS: the package's compiled C++ op" if has_cpp_nms(python) else
                 "Soft-NMS: the package's C++ extension did not build; it used its pure-Python fallback")
    common = ["--config", args.config, "--device", args.device, "--no-progress"] + sum((["--set", s] for s in sets), [])

    # 3. Ours, then the package, on the same videos, crops and shuffles (seed cfg["seed"]).
    print(f"{len(train_ids)} training videos ({args.ratio}% labeled), {len(test_ids)} test videos; "
          f"runs under {out}", flush=True)
    ours = run_ours(os.path.join(out, "ours"), common, env)
    job = {"af_config": af_cfg, "seed": cfg["seed"], "classes": classes, "ema_decay": cfg["train"]["ema_decay"],
           "loss_norm_momentum": cfg["loss"]["loss_norm_momentum"],
           "crop": {"max_seq_len": cfg["dataset"]["max_seq_len"], "trunc_thresh": cfg["dataset"]["trunc_thresh"]},
           "train": video_items(videos, train_ids, cfg["dataset"]),
           "test": video_items(videos, test_ids, cfg["dataset"])}
    theirs = run_actionformer(os.path.join(out, "actionformer"), python, job, args, common, env)

    # 4. The table.
    epochs = cfg["train"]["warmup_epochs"] + cfg["train"]["epochs"]
    rows = [("ours (alqa none, acp none)", ours["metrics"], f"{ours['s_per_iter']:.3f}"),
            (f"{PACKAGE} (PyPI)", theirs["metrics"], f"{theirs['s_per_iter']:.3f}"),
            (f"{PACKAGE}, weights without EMA (diagnostic)", theirs["metrics_raw"], "")]
    title = (f"Plain ActionFormer, ours against the package: preset {args.preset}, seed {seed}, {args.ratio}% labeled "
             f"({len(train_ids)} videos), {epochs} epochs ({ours['iters']} / {theirs['iters']} iterations), "
             f"{args.config}, device {args.device}, "
             f"threads {args.threads or os.environ.get('OMP_NUM_THREADS', 'default')}")
    print_table(rows, ours, theirs, title, notes)
    return ours, theirs


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    # 1. The package, installed into its own environment where it is missing (or a one-line skip).
    python, why = ensure_package(args.af_venv, os.path.join(args.out, "install.log"))
    if python is None:
        print(f"bench_actionformer: skipped: {PACKAGE} cannot be installed: {why}")
        return None
    results = [compare(args, python, env, seed) for seed in args.seeds]
    if len(results) > 1:
        ours, theirs = ([100 * r[k]["metrics"]["average"] for r in results] for k in (0, 1))
        print(f"\nseeds {args.seeds}: avg mAP ours " + "%.2f ± %.2f" % mean_std(ours) + " ("
              + ", ".join(f"{x:.2f}" for x in ours) + f"), {PACKAGE} " + "%.2f ± %.2f" % mean_std(theirs)
              + " (" + ", ".join(f"{x:.2f}" for x in theirs) + ")")
    print(f"(wall time {time.time() - start:.0f} s; runs reused under {args.out} when present)")
    return results


if __name__ == "__main__":
    main()
