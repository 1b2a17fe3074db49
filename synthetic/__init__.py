"""The embedded datasets, so the toolkit runs with no downloads: a THUMOS-like one (thumos_like.py, in
sizes and difficulty presets) and an ActivityNet-like one (anet_like.py). They stand beside the
method's package: they import common/ (its reader, splits and scores file), common/ never imports them,
and no stage generates data. make.py writes the dataset a config names, as the stages then read it:

    python -m synthetic --config configs/default.yaml
"""
