"""The embedded datasets, so the toolkit runs with no downloads: a THUMOS-like one (thumos_like.py, in
sizes and difficulty presets) and an ActivityNet-like one (anet_like.py). They stand beside the
method's package and import common/ (its reader, splits and scores file)."""
