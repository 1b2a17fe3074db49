"""Train the detector (ActionFormer with APL's ALQA heads, or BMN: model.arch) on the labeled videos only.

Reads the config's dataset (annotation file, features, labeled split) and writes to --out:
last.pt (every epoch, atomically), config.yaml (the resolved config) and log.jsonl (one line per
epoch). The checkpoint feeds evaluate.py, and later pseudo_label.py. With dataset.class_agnostic
(ActivityNet's recipe) the detector has one class, "action": its targets collapse every label to it,
while the ICD and ACP's fine contrast keep the real classes (common/losses.py, class_agnostic).
With model.arch bmn (which needs that recipe, on features resized to model.bmn.temporal_scale) the
loss is BMN's published TEM + PEM loss with labels from the ground truth (common/bmn_detector.py),
plus the same ICD and ACP terms.

Example:
  python train_supervised.py --config configs/default.yaml --out outputs/sup10 \\
      --set dataset.labeled_split=data/synthetic_small/splits/labeled_10.txt
  python train_supervised.py --config configs/default.yaml --out outputs/sup10 --resume
  python train_supervised.py --config configs/anet_synthetic_bmn.yaml --out outputs/bmn_sup10

Tuning: on the CPU config the learning rate (train.lr) matters most; with few labeled videos,
more epochs help more than a wider model.
"""
import functools
import os


from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import save_config
from common.distributed import distribute_loss
from common.engine import (ModelEma, build_optimizer, build_scheduler, iters_per_epoch, log_epoch, make_loader,
                           train_one_epoch)
from common.icd import InstanceBank, feature_source
from common.losses import LossNormalizer
from common.stage import (add_common_args, build_detector, config_from_args, detector_parts, labeled_ids,
                          load_data, make_parser, prepare_run, run_main, start_from, training_dataset)


def parse_args(argv=None):
    parser = add_common_args(make_parser(__doc__))
    parser.add_argument("--out", required=True, help="output folder (last.pt, config.yaml, log.jsonl)")
    parser.add_argument("--init", help="checkpoint whose weights start the detector (e.g. pretrain_acp.py's)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # 1. Config, seed, device.
    cfg = config_from_args(args)
    device, last = prepare_run(args, cfg)

    # 2. Data: the labeled videos and their ground truth.
    videos, classes = load_data(cfg)
    train_ids = labeled_ids(cfg, videos)
    dataset = training_dataset(cfg, videos, train_ids, cfg["seed"])
    print(f"{len(train_ids)} labeled videos, {sum(len(videos[v].labels) for v in train_ids)} actions, "
          f"{len(classes)} classes, device {device}")

    # 3. Detector, optimiser, schedule, EMA.
    model = build_detector(cfg, classes, device)
    iters = iters_per_epoch(len(dataset), cfg["train"]["batch_size"])
    optimizer = build_optimizer(model, cfg["train"])
    scheduler = build_scheduler(optimizer, cfg["train"], iters)
    ema = ModelEma(model, cfg["train"]["ema_decay"])
    normalizer = LossNormalizer(cfg["loss"]["init_loss_norm"], cfg["loss"]["loss_norm_momentum"])
    start_epoch, step = 0, 0
    if args.resume and os.path.exists(last):
        start_epoch, step = restore_training_state(last, model, ema, optimizer, scheduler, [normalizer])
    elif args.init:
        start_from(model, load_checkpoint(args.init), args.init, cfg)
        ema.module.load_state_dict(model.state_dict())
    save_config(cfg, os.path.join(args.out, "config.yaml"))

    # 4. Train; a checkpoint after every epoch.
    bank = InstanceBank(cfg["dataset"], videos, train_ids)  # ICD partners (Eq. 7)
    bank.build(feature_source(cfg["dataset"], device))
    labeled_loss = detector_parts(cfg).labeled_loss
    compute_loss = distribute_loss(model, functools.partial(labeled_loss, cfg=cfg, normalizer=normalizer, bank=bank),
                                   device, unused_parameters=cfg["acp"]["mode"] == "none")
    total = cfg["train"]["warmup_epochs"] + cfg["train"]["epochs"]
    for epoch in range(start_epoch, total):
        loader = make_loader(dataset, cfg, epoch, model.pad_multiple)
        stats, step = train_one_epoch(model, loader, optimizer, scheduler, compute_loss, ema, device,
                                      epoch, step, cfg["train"]["clip_grad"], not args.no_progress,
                                      cfg["train"]["precision"])
        save_checkpoint(last, training_state(model, ema, optimizer, scheduler, epoch, step, cfg, "supervised",
                                             {"init": args.init}, classes, [normalizer]))
        log_epoch(args.out, epoch, total, step, stats)
    print(f"wrote {last}")
    return last


if __name__ == "__main__":
    run_main(main)
