"""How well the raw input features name an action's class: a nearest-prototype probe.

Each action's feature is the mean over its grid steps of (features - its video's median feature),
the same pooling as pseudo.relabel's prototypes (common/relabel.py); each class's prototype is the
mean of its labeled actions' (labeled split); every action of the unlabeled split is named by the
nearest prototype in cosine, among every class that has one. The accuracy says how much a rule
built on the input features' geometry can rest on them: 81% on `small`, 44% on a held-out benchmark
with THUMOS14's layout, 24% on that benchmark's features through a fixed ReLU encoder (issue 26).
It reads the unlabeled videos' annotations, so it is a property of the data, not a method.

    python benchmarks/probe_classes.py --config configs/default.yaml [--set key=value ...]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common.config import load_config  # noqa: E402
from harness import probe_accuracy  # noqa: E402  (bench_presets.py measures it on every preset)
from synthetic.make import make_data  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.set)
    make_data(cfg)
    result = probe_accuracy(cfg)
    print(f"nearest-prototype probe: {100 * result['accuracy']:.1f}% of {result['actions']} unlabeled actions "
          f"named right ({result['labeled_actions']} labeled actions, {result['classes_with_prototype']} "
          "classes with a prototype)")
    return result


if __name__ == "__main__":
    main()
