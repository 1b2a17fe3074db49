"""Semi-supervised training: labeled videos with their ground truth, unlabeled ones with pseudo labels.

Starts from a checkpoint (train_supervised.py's, or a previous round's) and trains with
    L = L^s + beta * L^u                                                          Eq. (12)
where each term has the classification (Eq. 5), DIoU (Eq. 1) and localisation-quality (Eq. 3)
losses over its own moving average of positives. On an unlabeled video, points outside every
pseudo-labeled action are background, except inside the predictions the file lists as rejected,
which the classification loss leaves out (semi.background: rejected; `all` is the paper's
reading, every such point background). A pseudo label's class target is spread over the classes
its class_scores list, in proportion (semi.class_target: soft; hard, its label alone, is the
paper's reading). The ICD keeps learning from the labeled instances (Eq. 8).
An epoch is one pass over the pseudo-labeled videos, with the labeled ones cycled beside them.

The pseudo-label file (pseudo_label.py's, possibly edited by hand) is checked entry by entry
before anything starts: an unknown video or label, a label_id that disagrees, a segment that is
reversed or outside its video, a non-numeric value or broken JSON is a one-line error.

Example:
  python train_semi.py --config configs/default.yaml --init outputs/main/supervised/last.pt \\
      --pseudo-labels outputs/main/pseudo_labels_round1.json --out outputs/main/semi_round1
"""
import dataclasses
import functools
import os

from common import pseudo_file
from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import save_config
from common.data import unannotated
from common.distributed import distribute_loss
from common.engine import (ModelEma, build_optimizer, build_scheduler, iters_per_epoch, log_epoch, make_loader,
                           train_one_epoch)
from common.icd import InstanceBank, feature_source
from common.losses import LossNormalizer, pseudo_class_targets
from common.stage import (add_common_args, build_detector, config_from_args, config_with_model_of, detector_parts,
                          labeled_ids, load_data, make_parser, prepare_run, run_main, start_from,
                          training_dataset)


def parse_args(argv=None):
    parser = add_common_args(make_parser(__doc__))
    parser.add_argument("--init", required=True, help="the checkpoint to start from (its EMA weights): the supervised detector's "
                        "or a previous round's; pretrain_acp.py's trains a fresh student (heads from scratch)")
    parser.add_argument("--pseudo-labels", required=True, help="pseudo_label.py's JSON (hand edits welcome)")
    parser.add_argument("--out", required=True, help="output folder (last.pt, config.yaml, log.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    return parser.parse_args(argv)


def load_pseudo_labels(path, videos, classes, labeled, train_subset, class_target="hard"):
    """The pseudo-labeled videos as the dataset's Video records with the file's actions, and their
    class targets under semi.class_target (pseudo_class_targets). The file is read by its one strict
    reader (common/pseudo_file.py), which checks that its videos are unlabeled training videos of
    the dataset."""
    pseudo = pseudo_file.read(path, classes, {"videos": videos, "labeled": labeled, "train_subset": train_subset})
    out = {}
    for vid, pl in sorted(pseudo.videos.items()):
        weights = (None if class_target == "hard"  # one-hot labels, the detector's own path
                   else pseudo_class_targets(pl.labels, pl.extra, len(classes), classes, class_target))
        # the video's own annotations, if the file has any, are never read: its truth is the pseudo labels
        out[vid] = dataclasses.replace(unannotated(videos[vid]), segments=pl.segments, labels=pl.labels, extra=pl.extra,
                                       uncertain=pseudo_file.rejected_segments(pseudo, vid), label_weights=weights)
    return out


def cycled_batches(dataset, cfg, epoch, pad_multiple):
    """Labeled batches without end: pass k of epoch e is shuffled with its own seed."""
    k = 0
    while True:
        yield from make_loader(dataset, cfg, epoch * 1000 + k, pad_multiple)
        k += 1


class PairedLoader:
    """One labeled and one unlabeled batch per step; len() = the unlabeled batches."""

    def __init__(self, labeled, unlabeled, cfg, epoch, pad_multiple):
        self.unlabeled = make_loader(unlabeled, cfg, epoch, pad_multiple)
        self.labeled = cycled_batches(labeled, cfg, epoch, pad_multiple)

    def __len__(self):
        return len(self.unlabeled)

    def __iter__(self):
        for u in self.unlabeled:
            yield {"labeled": next(self.labeled), "unlabeled": u}


def semi_loss(model, batch, cfg, norm_s, norm_u, bank):
    """Eq. (12): the labeled loss (with ICD) plus beta times the pseudo-labeled loss, the detector's
    own (model.arch: common/stage.py, detector_parts)."""
    detector = detector_parts(cfg)
    sup = detector.labeled_loss(model, batch["labeled"], cfg, norm_s, bank)
    unsup = detector.pseudo_labeled_loss(model, batch["unlabeled"], cfg, norm_u)
    parts = {f"{k}": v for k, v in sup.items() if k != "loss"}
    parts.update({f"u_{k}": v for k, v in unsup.items() if k != "loss"})
    parts["loss"] = sup["loss"] + cfg["semi"]["beta"] * unsup["loss"]
    return parts


def main(argv=None):
    args = parse_args(argv)
    # 1. Config, seed, device; the detector's shape comes from the checkpoint we start from.
    cfg = config_from_args(args)
    init = load_checkpoint(args.init)
    cfg = config_with_model_of(cfg, init, args.init)
    device, last = prepare_run(args, cfg)

    # 2. Data: labeled videos with ground truth, unlabeled ones with the (checked) pseudo labels.
    videos, classes = load_data(cfg)
    lab_ids = labeled_ids(cfg, videos)
    pseudo = load_pseudo_labels(args.pseudo_labels, videos, classes, set(lab_ids), cfg["dataset"]["train_subset"],
                                cfg["semi"]["class_target"])
    labeled = training_dataset(cfg, videos, lab_ids, cfg["seed"])
    unlabeled = training_dataset(cfg, pseudo, sorted(pseudo), cfg["seed"] + 1)
    print(f"{len(lab_ids)} labeled videos ({sum(len(videos[v].labels) for v in lab_ids)} actions), "
          f"{len(pseudo)} pseudo-labeled ({sum(len(v.labels) for v in pseudo.values())} pseudo labels), "
          f"device {device}")

    # 3. Detector from --init, fresh optimiser and schedule for this round.
    model = build_detector(cfg, classes, device)
    start_from(model, init, args.init, cfg)
    tcfg = {**cfg["train"], "epochs": cfg["semi"]["epochs"], "warmup_epochs": cfg["semi"]["warmup_epochs"]}
    optimizer = build_optimizer(model, tcfg)
    iters = iters_per_epoch(len(unlabeled), tcfg["batch_size"])
    scheduler = build_scheduler(optimizer, tcfg, iters)
    ema = ModelEma(model, tcfg["ema_decay"])
    norms = [LossNormalizer(cfg["loss"]["init_loss_norm"], cfg["loss"]["loss_norm_momentum"]) for _ in range(2)]
    start_epoch, step = 0, 0
    if args.resume and os.path.exists(last):
        start_epoch, step = restore_training_state(last, model, ema, optimizer, scheduler, norms)
    save_config(cfg, os.path.join(args.out, "config.yaml"))

    # 4. Train on both; a checkpoint after every epoch.
    bank = InstanceBank(cfg["dataset"], videos, lab_ids)
    bank.build(feature_source(cfg["dataset"], device))
    compute_loss = distribute_loss(
        model, functools.partial(semi_loss, cfg=cfg, norm_s=norms[0], norm_u=norms[1], bank=bank), device,
        unused_parameters=cfg["acp"]["mode"] == "none")
    total = tcfg["warmup_epochs"] + tcfg["epochs"]
    parents = {"init": os.path.abspath(args.init), "pseudo_labels": os.path.abspath(args.pseudo_labels)}
    for epoch in range(start_epoch, total):
        loader = PairedLoader(labeled, unlabeled, cfg, epoch, model.pad_multiple)
        stats, step = train_one_epoch(model, loader, optimizer, scheduler, compute_loss, ema, device,
                                      epoch, step, tcfg["clip_grad"], not args.no_progress,
                                      tcfg["precision"])
        save_checkpoint(last, training_state(model, ema, optimizer, scheduler, epoch, step, cfg, "semi",
                                             parents, classes, norms))
        log_epoch(args.out, epoch, total, step, stats)
    print(f"wrote {last}")
    return last


if __name__ == "__main__":
    run_main(main)
