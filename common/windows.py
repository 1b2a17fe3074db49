"""Sliding windows over a video's feature sequence: BMN's THUMOS14 setting (dataset.window).

THUMOS14's videos are too long to resize to BMN's T steps (a 4-minute video is ~1,400 snippets), so
BMN, following BSN, slides windows of T snippets over each video's own grid, trains on the windows
that hold an action and predicts on every window, then merges a video's windows back into one list
of proposals (configs/thumos_tsn_bmn.yaml names the sources):

  * window_starts: starts 0, stride, 2 stride, ... until a window reaches the video's end; the last
    window is padded at the end (collate's mask is False there) rather than moved back to end with
    the video, so every window starts on the same stride;
  * window_truth: a training window is kept when some action lies more than `min_inside` of its
    length inside it (0.9, as G-TAD's THUMOS14 reader, which BMN's public THUMOS14 code follows);
    its ground truth is every action that overlaps it, clipped to the window: an action cut by the
    window's edge keeps the part inside, in window-relative grid units;
  * WindowDataset: those windows as the items the training stages iterate (dataset items of the
    same keys as VideoDataset's, "offset" the window's start), through common/stage.py's
    training_dataset;
  * to_video_unit: a window's proposal, in BMN's normalised time of the window, moved to the
    video's: BMN's time of a window starting at step s is the video's shifted by s / T
    (common/bmn_detector.py decodes every window, merges them and runs one Soft-NMS a video).

Grid units are common/data.py's: step i of a video is centred on grid position i and covers
[i - 0.5, i + 0.5]; a window starting at s covers [s - 0.5, s + T - 0.5].
"""
import numpy as np
import torch

from common.data import check_features, data_error, grid_of, load_features, time_to_grid


def window_starts(length, size, stride):
    """Starts of the windows over a sequence of `length` steps: 0, stride, ..., the first that reaches
    the end last (padded when it runs past it). A video shorter than a window has one window."""
    starts = [0]
    while starts[-1] + size < length:
        starts.append(starts[-1] + stride)
    return starts


def window_truth(segments, start, size, min_inside=0.9):
    """A window's ground truth: (kept, index, segments).

    segments: (N, 2) actions in the video's grid units. An action overlaps the window when some of
    it lies inside [start - 0.5, start + size - 0.5]; `index` lists those (N',), `segments` (N', 2)
    are them clipped to the window and shifted to its start (window-relative grid units). `kept`:
    some action has more than min_inside of its length inside the window (a training window).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    lo, hi = start - 0.5, start + size - 0.5
    inside = np.clip(np.minimum(segments[:, 1], hi) - np.maximum(segments[:, 0], lo), 0.0, None)
    length = segments[:, 1] - segments[:, 0]
    share = np.divide(inside, length, out=np.zeros_like(inside), where=length > 0)
    index = np.flatnonzero(inside > 0)
    clipped = np.clip(segments[index], lo, hi) - start
    return bool((share > min_inside).any()), index, clipped


def to_video_unit(segments, start, size):
    """A window's segments in BMN's normalised time of the window -> the video's ((g + 0.5) / T of the
    video's grid position g, so values past 1 for later windows): shifted by start / size."""
    return segments + start / size


class WindowDataset(torch.utils.data.Dataset):
    """The training windows of some videos: (video, start) pairs, each item a window of at most `size`
    steps with its ground truth (window_truth) in window-relative grid units.

    select=True keeps the windows that hold an action (window_truth's rule); select=False keeps every
    window and reads no annotation (ACP's pre-training). The list is fixed: the order of the items
    comes from the loader's seeded shuffle, so set_epoch changes nothing.
    """

    def __init__(self, dcfg, videos, video_ids, select=True):
        missing = [vid for vid in video_ids if vid not in videos]
        if missing:
            raise data_error(dcfg["annotation_file"], f"not in the annotation file ({len(missing)} ids missing)",
                             missing[0])
        check_features(dcfg, video_ids)
        wcfg = dcfg["window"]
        self.dcfg, self.videos, self.video_ids = dcfg, videos, list(video_ids)
        self.size, self.min_inside = wcfg["size"], wcfg["min_inside"]
        self.epoch, self.items = 0, []                      # items: (video id, start)
        for vid in self.video_ids:
            length = len(load_features(dcfg, vid))         # the memory map's shape: no data read
            segments = self._grid_segments(self.videos[vid], length)
            for start in window_starts(length, self.size, wcfg["stride"]):
                if not select or window_truth(segments, start, self.size, self.min_inside)[0]:
                    self.items.append((vid, start))
        if not self.items:
            raise data_error(dcfg["annotation_file"], f"none of the {len(self.video_ids)} videos has a window of "
                             f"{self.size} steps holding more than {self.min_inside} of an action "
                             "(dataset.window.min_inside)")

    def _grid_segments(self, video, length):
        stride, frames = grid_of(self.dcfg, length)
        return time_to_grid(video.segments, video.fps, stride, frames)

    def __len__(self):
        return len(self.items)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        vid, start = self.items[i]
        video = self.videos[vid]
        feats = load_features(self.dcfg, vid)
        stride, frames = grid_of(self.dcfg, len(feats))
        window = feats[start: start + self.size]          # reads only the window; collate pads the rest
        segments = time_to_grid(video.segments, video.fps, stride, frames)
        _, index, segments = window_truth(segments, start, self.size, self.min_inside)
        uncertain = time_to_grid(video.uncertain, video.fps, stride, frames)
        _, _, uncertain = window_truth(uncertain, start, self.size)
        extra = {}
        if video.label_weights is not None:
            extra["label_weights"] = torch.from_numpy(video.label_weights[index].astype(np.float32))  # (N, C)
        return {
            "video_id": vid,
            "feats": torch.from_numpy(np.array(window.T, dtype=np.float32, order="C")),       # (D, n <= size)
            "segments": torch.from_numpy(segments.astype(np.float32)),                       # (N, 2)
            "labels": torch.from_numpy(video.labels[index].astype(np.int64)),                # (N,)
            "instances": torch.from_numpy(index.astype(np.int64)),      # (N,) each action's index in the video's list
            "uncertain": torch.from_numpy(uncertain.astype(np.float32)),                     # (M, 2)
            "fps": video.fps, "duration": video.duration,
            "feat_stride": stride, "num_frames": frames, "offset": start, **extra,
        }
