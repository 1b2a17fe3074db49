"""What the benchmarks share: stage scripts run as processes and their runs on disk, the figures'
statistics and columns, the difficulty presets' overrides, the feature probe and the official
ActivityNet code's Python-3 rewrites. Imports common/ and synthetic/ only, so that no benchmark imports
another's script (or a stage script, or a test).
"""
import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.config import atomic_write_text  # noqa: E402
from common.relabel import centred, class_prototypes, pooled_actions  # noqa: E402
from common.stage import labeled_ids, load_data, unlabeled_ids  # noqa: E402
from synthetic.anet_like import ANET_PRESETS  # noqa: E402
from synthetic.thumos_like import PRESETS  # noqa: E402


# ---------------------------------------------------------------- a cell's method and its runs on disk

def method(alqa="tiou_tnd", acp="both", selection="adaptive", icd="both", semi=True, recipe="paper"):
    """One cell's method: the supervised part (alqa, acp) and, for semi cells, the pseudo labels'
    selection and ICD, within a recipe (common/config.py RECIPES): the paper's for every table here."""
    return {"alqa": alqa, "acp": acp, "semi": semi, "selection": selection, "icd": icd, "recipe": recipe}


ACTF = method(alqa="none", acp="none", semi=False)       # ActionFormer on the labeled videos only
APL = method()                                           # everything: ALQA, ICD (EAP + MPP), ACP


def run_dirs(out, seed, ratio, m):
    """Where each step of a cell lives; names spell out every setting, so cells share runs."""
    base = os.path.join(out, f"seed{seed}")
    sup = os.path.join(base, f"r{ratio}", f"sup_alqa-{m['alqa']}_acp-{m['acp']}")
    # the recipe changes only the round (pseudo labels and semi-supervised training); the paper's is
    # named, so a round of another reading under --out is never taken for one of its cells
    suffix = "_paper" if m["recipe"] == "paper" else ""
    semi = f"{sup}_semi_{m['selection']}_icd-{m['icd']}{suffix}" if m["semi"] else None
    acp = os.path.join(base, f"acp-{m['acp']}") if m["acp"] != "none" else None
    return acp, sup, semi


def usage_path(log):
    """Where a step's wall time and peak memory go: beside its log, OUT/.../stage.usage.json."""
    return os.path.splitext(log)[0] + ".usage.json"


def run_measured(command, log_file, usage):
    """Run a stage script, its output to `log_file`; write its wall seconds and peak resident memory
    (the process's max RSS, from wait4) to `usage` when it succeeds. Returns the exit code."""
    start = time.time()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
    except BaseException:  # interrupted: the stage goes with us, as under subprocess.run
        proc.kill()
        proc.wait()
        raise
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code == 0:  # ru_maxrss is in KiB on Linux
        atomic_write_text(usage, json.dumps({"wall_s": round(time.time() - start, 1),
                                             "max_rss_mb": round(rusage.ru_maxrss / 1024, 1)}) + "\n")
    return code


class Runner:
    """Runs cells' steps, each a stage script in its own process, skipping those done under args.out;
    several copies of one command share the steps through lock files. args: config, device, set,
    splits (folder of the split files), out; cfg and sizes only for estimate_seconds."""

    def __init__(self, args, cfg, sizes):
        self.args, self.cfg, self.sizes = args, cfg, sizes
        self.done_runs, self.total_runs, self.started = 0, 0, time.time()

    def sets(self, seed, ratio, m):
        split = os.path.join(self.args.splits, "%s_{}pct.txt".format(ratio))
        # the recipe first: the cell's components (alqa, acp, selection, icd) vary within it
        overrides = [f"recipe={m['recipe']}", f"seed={seed}", f"model.alqa={m['alqa']}", f"acp.mode={m['acp']}",
                     f"pseudo.selection={m['selection']}", f"pseudo.icd={m['icd']}"]
        if ratio == 100:
            overrides += ["dataset.labeled_split=null", "dataset.unlabeled_split=null"]
        else:
            overrides += [f"dataset.labeled_split={split % 'labeled'}",
                          f"dataset.unlabeled_split={split % 'unlabeled'}"]
        args = ["--config", self.args.config, "--device", self.args.device, "--no-progress"]
        return args + sum((["--set", s] for s in overrides + self.args.set), [])

    def step(self, label, script, args, done, log):
        """Run one stage script unless `done` exists; its output goes to `log`. Returns False when
        another copy of this script holds the step's lock (DONE.lock) and is running it."""
        if os.path.exists(done):
            return True
        os.makedirs(os.path.dirname(log), exist_ok=True)
        try:
            os.close(os.open(done + ".lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        try:
            self.done_runs += 1
            print(f"[{self.done_runs}/{self.total_runs}] {label}: {script} ... ", end="", flush=True)
            start = time.time()
            with open(log, "a") as f:
                returncode = run_measured([sys.executable, script] + args, f, usage_path(log))
            if returncode != 0:
                raise SystemExit(f"\nerror: {script} failed (exit {returncode}); its output: {log}")
            if not os.path.exists(done):  # training stages: mark the run finished
                open(done, "w").close()
        finally:
            os.unlink(done + ".lock")
        print(f"{time.time() - start:.0f} s  (elapsed {(time.time() - self.started) / 60:.1f} min)", flush=True)
        return True

    def run_cells(self, cells):
        """Every cell's steps in order. A step another copy is running is waited for, meanwhile
        other cells go on: several copies of the same command (one per GPU or core) share the work."""
        waiting = list(cells)
        while waiting:
            blocked = []
            for steps in waiting:
                if not all(self.step(*step) for step in steps):  # stops at the first locked step
                    blocked.append(steps)
            if blocked and len(blocked) == len(waiting):
                locks = sorted({s[3] + ".lock" for c in blocked for s in c if os.path.exists(s[3] + ".lock")})
                print(f"waiting for another process to finish {locks[:1]} (delete a lock left by a crash)",
                      flush=True)
                time.sleep(30)
            waiting = blocked

    def steps(self, seed, ratio, m):
        """The steps of one cell: (label, script, args, done-file, log), in order."""
        sets = self.sets(seed, ratio, m)
        acp, sup, semi = run_dirs(self.args.out, seed, ratio, m)
        label = f"seed {seed}, {ratio}%, " + (os.path.basename(semi or sup))
        out = []
        if acp:
            out.append((label, "pretrain_acp.py", sets + ["--out", acp, "--resume"],
                        os.path.join(acp, "done"), os.path.join(acp, "stage.log")))
        init = ["--init", os.path.join(acp, "last.pt")] if acp else []
        out.append((label, "train_supervised.py", sets + ["--out", sup, "--resume"] + init,
                    os.path.join(sup, "done"), os.path.join(sup, "stage.log")))
        out.append(self._evaluation(label, sets, sup))
        if semi:
            pl = os.path.join(semi, "pseudo_labels.json")
            out.append((label, "pseudo_label.py", sets + ["--checkpoint", os.path.join(sup, "last.pt"), "--out", pl],
                        pl, os.path.join(semi, "pseudo_label.log")))
            out.append((label, "train_semi.py", sets + ["--init", os.path.join(sup, "last.pt"), "--pseudo-labels",
                                                        pl, "--out", semi, "--resume"],
                        os.path.join(semi, "done"), os.path.join(semi, "stage.log")))
            out.append(self._evaluation(label, sets, semi))
        return out

    def _evaluation(self, label, sets, run):
        metrics = os.path.join(run, "metrics.json")
        return (label, "evaluate.py", sets + ["--checkpoint", os.path.join(run, "last.pt"), "--out",
                                              os.path.join(run, "predictions.json"), "--json", metrics,
                                              "--no-per-class"], metrics, os.path.join(run, "evaluate.log"))

    def estimate_seconds(self, script, ratio):
        """Rough cost of one step, from iteration counts and this machine's measured speeds (docs/results.md)."""
        cfg, n_lab, n_unlab, n_eval = self.cfg, *self.sizes(ratio)
        epochs = lambda sec: sec["epochs"] + sec["warmup_epochs"]  # noqa: E731
        if script == "pretrain_acp.py":
            return epochs(cfg["acp"]) * math.ceil((n_lab + n_unlab) / cfg["acp"]["batch_size"]) * SPEED["acp"]
        if script == "train_supervised.py":
            return epochs(cfg["train"]) * math.ceil(n_lab / cfg["train"]["batch_size"]) * SPEED["supervised"]
        if script == "train_semi.py":
            return epochs(cfg["semi"]) * math.ceil(n_unlab / cfg["train"]["batch_size"]) * SPEED["semi"]
        if script == "pseudo_label.py":
            return n_unlab * SPEED["predict"] + SPEED["start"]
        return n_eval * SPEED["predict"] + SPEED["start"]


# Seconds per iteration (batch of 2 videos; ACP 4) and per predicted video of the embedded default
# config on an idle 2-core CPU (docs/results.md), plus a process start. Only the estimate uses them.
SPEED = {"supervised": 0.2, "acp": 0.3, "semi": 0.5, "predict": 0.15, "start": 5.0}


# ---------------------------------------------------------------- figures

ANET_THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(10)]   # the official protocol
ANET_SHOWN = (0.5, 0.75, 0.95)                                     # the columns ActivityNet papers give


def mean_std(values):
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, std


def is_anet(thresholds):
    """Scored at ActivityNet's tIoU thresholds 0.5:0.05:0.95."""
    return [round(t, 2) for t in thresholds] == ANET_THRESHOLDS


def shown_columns(thresholds, anet):
    """(label, index into metrics.json's mAP list) of the thresholds a table shows: every one for
    THUMOS14, 0.5 / 0.75 / 0.95 for ActivityNet."""
    if not anet:
        return [(f"mAP@{t:g}", i) for i, t in enumerate(thresholds)]
    return [(f"mAP@{t:g}", min(range(len(thresholds)), key=lambda i: abs(thresholds[i] - t))) for t in ANET_SHOWN]


# ---------------------------------------------------------------- the embedded dataset's presets

PRESET_NAMES = ["small"] + list(PRESETS)  # the THUMOS-like ones, which the benchmarks run by default
ALL_PRESETS = PRESET_NAMES + list(ANET_PRESETS)  # with the ActivityNet-like ones, run when named
ANET_CONFIG = "configs/anet_synthetic.yaml"  # the config of every ActivityNet-like preset


def preset_config(preset, config):
    """The config a preset runs with: `config` for the THUMOS-like ones, ANET_CONFIG for the
    ActivityNet-like ones (class-agnostic, ActivityNet's thresholds)."""
    return ANET_CONFIG if preset in ANET_PRESETS else config


def preset_sets(preset, ratio=10):
    """Overrides that point the preset's config at its data and its split (and, for an ActivityNet-like
    preset, its video-level scores)."""
    root = f"data/synthetic_{preset}"
    return [f"dataset.synthetic_size={preset}", f"dataset.name=synthetic-{preset}",
            f"dataset.annotation_file={root}/annotations.json", f"dataset.feature_dir={root}/features",
            f"dataset.labeled_split={root}/splits/labeled_{ratio}pct.txt",
            f"dataset.unlabeled_split={root}/splits/unlabeled_{ratio}pct.txt"] + (
        [f"dataset.video_scores={root}/video_scores.json"] if preset in ANET_PRESETS else [])


# ---------------------------------------------------------------- the raw features' probe

def probe_by_parts(cfg):
    """{parts: probe_accuracy's result} with each action pooled whole and, where cfg's
    pseudo.prototype_parts is more, in that many pieces as the prototype rule then pools it."""
    return {parts: probe_accuracy(cfg, parts=parts) for parts in sorted({1, cfg["pseudo"]["prototype_parts"]})}


def probe_accuracy(cfg, transform=centred, parts=1):
    """{accuracy, actions, labeled_actions, classes_with_prototype} of the probe on cfg's splits, on
    each video's grid features passed through `transform` (by default the raw features, centred),
    each action pooled whole or in `parts` pieces side by side (common/relabel.py mean_pool)."""
    videos, classes = load_data(cfg, scores=False)
    dcfg = cfg["dataset"]
    bank, bank_labels = pooled_actions(dcfg, videos, labeled_ids(cfg, videos), transform, parts)
    test, test_labels = pooled_actions(dcfg, videos, unlabeled_ids(cfg, videos), transform, parts)
    protos, has = class_prototypes(bank, bank_labels, len(classes))
    norm = np.linalg.norm(test, axis=1, keepdims=True)
    sims = np.divide(test, norm, out=np.zeros_like(test), where=norm > 0) @ protos.T
    sims[:, ~has] = -np.inf  # a class without a labeled action cannot be named
    named = sims.argmax(axis=1)
    return {"accuracy": float((named == test_labels).mean()) if len(test_labels) else float("nan"),
            "actions": int(len(test_labels)), "labeled_actions": int(len(bank_labels)),
            "classes_with_prototype": int(has.sum())}


def timed(fn, *args):
    """Wall and CPU seconds of fn(*args) (CPU time too: wall time suffers on a busy machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


# ---------------------------------------------------------------- the official ActivityNet code

# Python 2 -> 3 rewrites the official files need; each pattern is applied to every line.
PY3_REWRITES = [
    (r"^(\s*)print (.+)$", r"\1print(\2)"),
    (r"^import urllib2$", "import urllib.request as urllib2"),
    (r"\.iteritems\(\)", ".items()"),
    (r"\bxrange\b", "range"),
    (r"\bnp\.float\b", "float"),  # removed from numpy; it was the builtin float
]


def rewrite_official(folder, tmp, names, rewrites=PY3_REWRITES):
    """Copy the official files `names` from `folder` into `tmp`, each line rewritten by `rewrites`."""
    for name in names:
        text = (folder / name).read_text()
        for pattern, repl in rewrites:
            text = re.sub(pattern, repl, text, flags=re.MULTILINE)
        (tmp / name).write_text(text)


def exit_on_mismatch(worst, tolerance, against):
    """Print the largest difference from the official figures and exit 1 when it is over tolerance."""
    print(f"\nmax |{against} - ours|: {worst:.2e} (tolerance {tolerance:.0e})")
    if worst > tolerance:
        sys.exit(1)
