"""Select pseudo labels for the unlabeled videos: ALQA's adaptive thresholds, refined by ICD.

Runs a checkpoint (EMA weights) over the config's unlabeled videos with exactly evaluate.py's
decoding and Soft-NMS, ranks the predictions by their joint score (Eq. 4), and
  1. drops those with joint score <= tau_neg; tau_pos = mean + pos_std * std of the rest of the
     video's (Eq. 6); positives >= tau_pos, candidates between (pseudo.selection=fixed instead keeps
     class scores >= 0.3, the paper's baseline);
  2. scores positives and candidates with ICD (Eq. 10): positives with S < tau_icd are removed
     (EAP), candidates are promoted (MPP) by pseudo.mpp's rule: S > threshold (by: icd, the paper)
     or a predicted tIoU >= threshold (by: tiou) (pseudo.icd: none | eap | mpp | both);
  In a later round, --previous names the round before's file and pseudo.carry_over what it keeps:
     thresholds: each video's tau_pos is at most the previous one; labels: that, and the previous
     pseudo labels that no new one overlaps at tIoU >= 0.5 (origin "previous_round") and its
     rejected predictions that no new entry overlaps (reason "previous_round");
  With pseudo.relabel prototype (not in the paper), each written prediction's class is re-decided
     among its class_scores' classes by the nearest prototype of the labeled actions' centred input
     features (pooled in pseudo.prototype_parts pieces), with pseudo.video_prior > 0 weighed by a
     vote of the video's own listed predictions (common/relabel.py; the detector's own is kept as
     detector_label where it differs), and a pseudo label that then doubles one of its video (same
     segment and class) is rejected as 'duplicate';
  3. writes the pseudo-label file (common/pseudo_file.py): per video its accepted `annotations` with
     their scores, origin and class_scores (P_cls of the prediction's point for its 5 most likely
     classes, the soft class target of semi.class_target = soft), its `rejected` predictions with
     the reason, and a top-level `meta`. Edit it by hand freely: its reader checks every entry.
With dataset.class_agnostic (ActivityNet's recipe) the predictions are proposals of one class: the
thresholds work on their joint scores as above, each takes its video's top-1 class of the video-level
classifier (dataset.video_scores) as its label, which the ICD scores it against (labeled instances
of that class), and its class_scores are the video's top 5 classes there (the file's meta says so).
BMN (model.arch bmn) is such a detector; its joint score is its fused score (common/bmn_detector.py).
When the unlabeled videos carry ground truth (benchmarks), prints the pseudo-label quality of
Fig. 3(c) for fixed / adaptive / +EAP / +MPP / +both.

Example:
  python pseudo_label.py --config configs/default.yaml --checkpoint outputs/main/supervised/last.pt \\
      --out outputs/main/pseudo_labels_round1.json
"""
import os

import numpy as np

from common import pseudo_file
from common.checkpoint import load_checkpoint
from common.config import ConfigError, check_mpp_head
from common.data import VideoDataset, grid_features, to_grid, unannotated
from common.distributed import is_main
from common.icd import InstanceBank, feature_source, icd_scores
from common.metrics import segment_tiou
from common.relabel import centred, class_prototypes, mean_pool, nearest_listed, pooled_actions
from common.stage import (add_common_args, build_detector, class_namer, config_from_args, config_with_model_of,
                          device_of, labeled_ids, load_data, load_weights, make_parser, predict, run_main,
                          unlabeled_ids)


def parse_args(argv=None):
    parser = add_common_args(make_parser(__doc__))
    parser.add_argument("--checkpoint", required=True, help="train_supervised.py or train_semi.py checkpoint")
    parser.add_argument("--out", required=True, help="the pseudo-label JSON to write")
    parser.add_argument("--previous", help="the previous round's pseudo-label file, for pseudo.carry_over")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- selection (Eq. 6)

def adaptive_threshold(scores, tau_neg, pos_std):
    """tau_pos from the joint scores above tau_neg: their mean + pos_std * their std (Eq. 6)."""
    kept = np.asarray(scores, dtype=np.float64)
    kept = kept[kept > tau_neg]
    if kept.size == 0:
        return float("inf")
    return float(kept.mean() + pos_std * kept.std())


def initial_status(pred, pcfg, tau_pos):
    """'positive' / 'candidate' / 'below_tau_neg' per prediction, before ICD."""
    s = pred["scores"]
    if pcfg["selection"] == "fixed":  # the baseline: class confidence alone, no candidates
        return np.where(pred["cls_score"] >= pcfg["fixed_threshold"], "positive",
                        np.where(s > pcfg["tau_neg"], "candidate", "below_tau_neg"))
    return np.where(s >= tau_pos, "positive", np.where(s > pcfg["tau_neg"], "candidate", "below_tau_neg"))


def refine(status, icd, mode, pcfg, pred):
    """EAP and MPP (Sec. 3.2) -> (accepted mask, origin / reason per prediction); pred: the video's
    predictions, whose predicted tIoU MPP reads with pseudo.mpp.by tiou."""
    eap, mpp = mode in ("eap", "both"), mode in ("mpp", "both")
    removed = eap & (status == "positive") & (icd < pcfg["tau_icd"])
    rule = pcfg["mpp"]  # Eq. (10): S_i > threshold; by tiou (not in the paper): ALQA's tIoU >= threshold
    promote = icd > rule["threshold"] if rule["by"] == "icd" else pred["tiou"] >= rule["threshold"]
    mined = mpp & (status == "candidate") & promote
    accepted = ((status == "positive") & ~removed) | mined
    reason = np.where(mined, "mined", np.where(accepted, "positive", np.where(removed, "eap", status)))
    return accepted, reason


def thresholds(results, pcfg):
    """tau_pos per video, from its own joint scores (Eq. 6)."""
    return {vid: adaptive_threshold(r["scores"], pcfg["tau_neg"], pcfg["pos_std"]) for vid, r in results.items()}


# ---------------------------------------------------------------- a later round (pseudo.carry_over)

CARRY_TIOU = 0.5  # a previous pseudo label overlapped this much by a new one is replaced by it


def carried_thresholds(taus, previous):
    """tau_pos of this round, at most the previous round's: the detector a round has trained is surer,
    its scores and so its own tau_pos rise, and without the cap it selects fewer pseudo labels than
    the round before (docs/presets_history.md, "A second round selected afresh")."""
    return {vid: min(t, previous.get(vid, float("inf"))) for vid, t in taus.items()}


def _new_to(entry, segments):
    return not len(segments) or segment_tiou(entry["segment"], segments).max() < CARRY_TIOU


def carry_labels(database, previous):
    """Add to each video the previous round's pseudo labels that no new one overlaps at tIoU >=
    CARRY_TIOU (whatever their classes), marked origin "previous_round", and its rejected
    predictions that no new entry overlaps, marked reason "previous_round": a surer detector
    predicts less above tau_neg, and without them more of the actions it has not found are trained
    as background than the round before (docs/presets_history.md, "A second round selected
    afresh"). Returns the two counts."""
    labels = rejected = 0
    for vid, video in database.items():
        accepted = pseudo_file.segments_of(video["annotations"])
        entries = pseudo_file.segments_of(video["annotations"] + video["rejected"])
        old_labels, old_rejected = previous.get(vid, ([], []))
        for entry in old_labels:
            if _new_to(entry, accepted):
                video["annotations"].append({k: v for k, v in entry.items() if k != "origin"}
                                            | {"origin": "previous_round"})
                labels += 1
        for entry in old_rejected:
            if _new_to(entry, entries):
                video["rejected"].append({k: v for k, v in entry.items() if k != "reason"}
                                         | {"reason": "previous_round"})
                rejected += 1
        video["annotations"], video["rejected"] = pseudo_file.ordered(video["annotations"]), pseudo_file.ordered(video["rejected"])
    return labels, rejected


# ---------------------------------------------------------------- prototype classes (pseudo.relabel)

def prototype_classes(results, decisions, videos, dcfg, labeled, num_classes, video_prior=0.0, parts=1):
    """pseudo.relabel prototype: every prediction the file will list (above tau_neg) takes, among the
    classes of its class_scores, the one whose prototype of the labeled actions is nearest (pooled
    over pseudo.prototype_parts pieces), weighed with pseudo.video_prior by its video's vote
    (common/relabel.py); then with_labels. Returns the results, the decisions and how many labels
    changed."""
    bank, bank_labels = pooled_actions(dcfg, videos, labeled, parts=parts)
    if not len(bank_labels):
        raise ConfigError("config key pseudo.relabel: prototype needs labeled actions, and the labeled "
                          "videos hold none")
    vids = sorted(results)
    listed = {vid: np.flatnonzero(decisions[vid][1] != "below_tau_neg") for vid in vids}
    pooled = {vid: mean_pool(centred(grid_features(dcfg, vid)[0]),
                             to_grid(dcfg, videos[vid], results[vid]["segments"][listed[vid]]), parts)
              if listed[vid].size else np.zeros((0, bank.shape[1])) for vid in vids}
    labels = {vid: results[vid]["labels"].copy() for vid in vids}
    protos, has = class_prototypes(bank, bank_labels, num_classes)
    for vid in vids:
        idx = listed[vid]
        if idx.size:
            labels[vid][idx] = nearest_listed(pooled[vid], results[vid]["topk_labels"][idx],
                                              results[vid]["labels"][idx], protos, has,
                                              results[vid]["scores"][idx], video_prior)
    return with_labels(results, decisions, labels)


def with_labels(results, decisions, labels):
    """The results with their new labels {vid: (N,)} (the detector's kept as detector_labels). A
    pseudo label that then has the segment and class of a higher-scored one of its video is rejected
    as 'duplicate' (ActionFormer predicts a point once per class: two classes of one point become the
    same pseudo label). Returns the results, the decisions and how many labels changed."""
    out_results, out_decisions, changed = {}, {}, 0
    for vid in sorted(results):
        r, (accepted, reason, icd) = results[vid], decisions[vid]
        changed += int((labels[vid] != r["labels"]).sum())
        accepted, reason, seen = accepted.copy(), reason.astype("<U16"), set()
        for i in np.flatnonzero(accepted)[np.argsort(-r["scores"][accepted], kind="stable")]:
            key = (int(labels[vid][i]), *np.round(r["segments"][i], 3).tolist())
            if key in seen:
                accepted[i], reason[i] = False, "duplicate"
            seen.add(key)
        out_results[vid] = {**r, "labels": labels[vid], "detector_labels": r["labels"]}
        out_decisions[vid] = (accepted, reason, icd)
    return out_results, out_decisions, changed


# ---------------------------------------------------------------- quality, Fig. 3(c)

def fig3c_selections(results, icd, pcfg, taus):
    """The five selections of Fig. 3(c) from the same predictions (adaptive ones at `taus`), as
    common/pseudo_file.py's quality_table takes them."""
    out = {}
    for name, selection, mode in (("fixed (cls >= %.2g)" % pcfg["fixed_threshold"], "fixed", "none"),
                                  ("adaptive", "adaptive", "none"), ("+EAP", "adaptive", "eap"),
                                  ("+MPP", "adaptive", "mpp"), ("+EAP+MPP", "adaptive", "both")):
        cfg = {**pcfg, "selection": selection}
        out[name] = {}
        for vid, r in results.items():
            accepted, _ = refine(initial_status(r, cfg, taus[vid]), icd[vid], mode, cfg, r)
            out[name][vid] = (r["segments"][accepted], r["labels"][accepted], r["scores"][accepted])
    return out


def main(argv=None):
    args = parse_args(argv)
    # 1. Config, checkpoint, data.
    cfg = config_from_args(args)
    pcfg, dcfg = cfg["pseudo"], cfg["dataset"]
    ckpt = load_checkpoint(args.checkpoint)
    cfg = config_with_model_of(cfg, ckpt, args.checkpoint)
    check_mpp_head(cfg)  # MPP by predicted tIoU needs the checkpoint's detector to predict it
    device = device_of(args)  # under torchrun each process predicts its share of the videos
    annotated, classes = load_data(cfg, scores=False)  # the scores file is read once, strictly, just below
    ids = unlabeled_ids(cfg, annotated)
    # The unlabeled videos without their annotations: nothing before section 5 (the quality table,
    # where the unlabeled videos' ground truth is given) can read them.
    videos = {**annotated, **{vid: unannotated(annotated[vid]) for vid in ids}}
    carry = pcfg["carry_over"] if args.previous else "none"
    previous = pseudo_file.previous_round(args.previous, classes) if carry != "none" else None  # checked before inference
    namer = class_namer(cfg, classes, ids)  # a classifier's scores, where it names the classes: checked before inference
    model = build_detector(cfg, classes, device)
    load_weights(model, ckpt, args.checkpoint)
    model.eval()

    # 2. Predictions on the unlabeled videos, with evaluate.py's post-processing.
    results = predict(model, VideoDataset(dcfg, videos, ids, training=False), cfg, device, not args.no_progress)
    if not is_main():  # rank 0 holds the merged predictions and does the rest
        return None
    results = namer.pseudo_labels(results)  # class-agnostic proposals take their video's class from the classifier

    # 3. Adaptive thresholds (Eq. 6) and ICD refinement (Eq. 10).
    source = feature_source(dcfg, device)
    bank = InstanceBank(dcfg, videos, labeled_ids(cfg, videos)).build(source)
    icd = icd_scores(model, results, videos, dcfg, bank, source, device)
    taus = thresholds(results, pcfg)
    if previous is not None:
        taus = carried_thresholds(taus, previous[0])
    decisions = {vid: (*refine(initial_status(r, pcfg, taus[vid]), icd[vid], pcfg["icd"], pcfg, r), icd[vid])
                 for vid, r in results.items()}
    detected, relabelled = results, 0
    if pcfg["relabel"] == "prototype":
        results, decisions, relabelled = prototype_classes(results, decisions, videos, dcfg, labeled_ids(cfg, videos),
                                                           len(classes), pcfg["video_prior"], pcfg["prototype_parts"])

    # 4. The pseudo-label file.
    reasons = np.concatenate([d[1] for d in decisions.values()] or [np.zeros(0, dtype=str)])
    counts = {"videos": len(ids), "positive": int((reasons == "positive").sum()),
              "mined": int((reasons == "mined").sum()), "removed_eap": int((reasons == "eap").sum()),
              "candidate": int((reasons == "candidate").sum()), "below_tau_neg": int((reasons == "below_tau_neg").sum())}
    if pcfg["relabel"] != "none":
        counts.update(relabelled=relabelled, duplicate=int((reasons == "duplicate").sum()))
    meta = {"checkpoint": os.path.abspath(args.checkpoint), "config": os.path.abspath(args.config),
            "overrides": args.set, **{k: pcfg[k] for k in sorted(pcfg)}, **namer.meta, "counts": counts,
            "tau_pos": {vid: (round(t, pseudo_file.DIGITS) if np.isfinite(t) else None) for vid, t in sorted(taus.items())}}
    if previous is not None:
        meta["previous"] = os.path.abspath(args.previous)
    content = pseudo_file.build_file(results, decisions, videos, classes, meta, dcfg["train_subset"])
    if carry == "labels":
        counts["previous_round"], counts["previous_rejected"] = carry_labels(content["database"], previous[1])
    pseudo_file.write(args.out, content)
    kept = counts["positive"] + counts["mined"] + counts.get("previous_round", 0)
    print(f"wrote {args.out}: {kept} pseudo labels on {len(ids)} videos "
          f"({counts['positive']} positive, {counts['mined']} mined by MPP, "
          + (f"{counts['previous_round']} kept from the previous round, " if carry == "labels" else "")
          + f"{counts['removed_eap']} removed by EAP, {counts['candidate']} candidates left out"
          + (f", {counts['previous_rejected']} of the previous round's" if carry == "labels" else "") + ")")
    if pcfg["relabel"] != "none":
        print(f"pseudo.relabel {pcfg['relabel']}: {relabelled} listed predictions changed class, "
              f"{counts['duplicate']} pseudo labels rejected as duplicates")

    # 5. Quality against the unlabeled videos' ground truth, when the annotation file gives it
    # (benchmarks): read here only, after the file is written.
    if any(len(annotated[v].labels) for v in ids):
        written = carry == "labels" or pcfg["relabel"] != "none"
        print(pseudo_file.format_quality(pseudo_file.quality_table(
            fig3c_selections(detected, icd, pcfg, taus), annotated, content["database"] if written else None, classes)))
    else:
        print(f"no pseudo-label quality table: the unlabeled videos have no annotations in {dcfg['annotation_file']}")
    return args.out


if __name__ == "__main__":
    run_main(main)
