"""Action-aware Contrastive Pre-training (ACP, Sec. 3.3): pre-train the detector's embedding,
backbone and pyramid on every training video, labeled and unlabeled, without any label
(model.arch bmn: BMN's base module, whose features are a one-level pyramid).

For each mini-batch: the pyramid's levels are upsampled to the input length and concatenated; N
frames are sampled per video (one in each of N equal segments); k-means on their input features
gives each frame a class (2 per video: action / background; `acp.clusters` over the batch), and
L_acp = L_conc + L_conf, both the InfoNCE of Eq. (11) (acp.mode picks which: Table 5).

Writes to --out: last.pt holding only the pre-trained parts (backbone, neck, ACP projection),
which `train_supervised.py --init` loads strictly while the heads start fresh; config.yaml;
log.jsonl.

Example:
  python pretrain_acp.py --config configs/default.yaml --out outputs/acp
  python train_supervised.py --config configs/default.yaml --init outputs/acp/last.pt --out outputs/sup10

Tuning: acp.temperature and acp.segments matter most; acp.clusters should grow with the number of
classes a batch of videos holds (batch_size x classes per video, plus background).
"""
import functools
import os

from common.acp import cluster_labels, contrast, gather_frames, pyramid_representation, sample_frames
from common.checkpoint import restore_training_state, save_checkpoint, training_state
from common.config import ConfigError, save_config
from common.data import check_features, unannotated
from common.distributed import distribute_loss
from common.engine import (ModelEma, build_optimizer, build_scheduler, iters_per_epoch, log_epoch, make_loader,
                           train_one_epoch)
from common.stage import (add_common_args, build_detector, config_from_args, detector_parts, load_data, make_parser,
                          prepare_run, run_main, subset_ids, training_dataset)


def parse_args(argv=None):
    parser = add_common_args(make_parser(__doc__))
    parser.add_argument("--out", required=True, help="output folder (last.pt, config.yaml, log.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    return parser.parse_args(argv)


def acp_loss(model, batch, cfg):
    """L_acp = L_conc + L_conf on k-means classes of the sampled frames' input features."""
    acfg = cfg["acp"]
    levels, _ = model.pyramid(batch["feats"], batch["mask"])
    idx = sample_frames(batch["mask"], acfg["segments"])
    rep = pyramid_representation(levels, batch["mask"].shape[1])
    frames = model.acp_proj(gather_frames(rep, idx))
    coarse, fine = cluster_labels(batch["feats"], idx, acfg["clusters"], acfg["center_videos"])
    parts = contrast(frames, coarse, fine, acfg["mode"], acfg["temperature"])
    parts["loss"] = parts.pop("acp_loss")
    return parts


def pretrained_only(state, prefixes):
    return {k: v for k, v in state.items() if k.startswith(prefixes)}


def main(argv=None):
    args = parse_args(argv)
    # 1. Config, seed, device.
    cfg = config_from_args(args)
    if cfg["acp"]["mode"] == "none":
        raise ConfigError("config key acp.mode: none leaves ACP nothing to pre-train")
    device, last = prepare_run(args, cfg)

    # 2. Data: every training video, labeled or not, without its annotations (ACP uses no label):
    # uniform random crops of long videos, or every window (dataset.window).
    videos, classes = load_data(cfg)
    ids = subset_ids(videos, cfg["dataset"]["train_subset"], cfg["dataset"]["annotation_file"])
    check_features(cfg["dataset"], ids)
    videos = {vid: unannotated(videos[vid]) for vid in ids}
    dataset = training_dataset(cfg, videos, ids, cfg["seed"], select=False)
    tcfg = {**cfg["train"], "epochs": cfg["acp"]["epochs"], "warmup_epochs": cfg["acp"]["warmup_epochs"],
            "batch_size": cfg["acp"]["batch_size"]}
    print(f"ACP pre-training ({cfg['acp']['mode']}) on {len(ids)} training videos, device {device}")

    # 3. The detector's pre-trainable parts, their optimiser, schedule and EMA.
    model = build_detector(cfg, classes, device)
    pretrained, heads = detector_parts(cfg).pretrained_prefixes, detector_parts(cfg).head_prefixes
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(pretrained))
    optimizer = build_optimizer(model, tcfg)
    scheduler = build_scheduler(optimizer, tcfg, iters_per_epoch(len(dataset), tcfg["batch_size"]))
    ema = ModelEma(model, tcfg["ema_decay"])
    start_epoch, step = 0, 0
    if args.resume and os.path.exists(last):
        start_epoch, step = restore_training_state(last, model, ema, optimizer, scheduler, [], heads)
    save_config(cfg, os.path.join(args.out, "config.yaml"))

    # 4. Pre-train; a checkpoint of the pre-trained parts after every epoch.
    loader_cfg = {**cfg, "train": tcfg}
    compute_loss = distribute_loss(model, functools.partial(acp_loss, cfg=cfg), device)
    total = tcfg["warmup_epochs"] + tcfg["epochs"]
    for epoch in range(start_epoch, total):
        loader = make_loader(dataset, loader_cfg, epoch, model.pad_multiple)
        stats, step = train_one_epoch(model, loader, optimizer, scheduler, compute_loss, ema, device,
                                      epoch, step, tcfg["clip_grad"], not args.no_progress,
                                      tcfg["precision"])
        state = training_state(model, ema, optimizer, scheduler, epoch, step, cfg, "acp", {}, classes, [])
        state["model"] = pretrained_only(state["model"], pretrained)
        state["ema"] = pretrained_only(state["ema"], pretrained)
        save_checkpoint(last, state)
        log_epoch(args.out, epoch, total, step, stats, f"L_acp {stats['loss']:.4f}  L_conc {stats['conc_loss']:.4f}  "
                                                       f"L_conf {stats['conf_loss']:.4f}")
    print(f"wrote {last}")
    return last


if __name__ == "__main__":
    run_main(main)
