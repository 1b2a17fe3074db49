"""Run the tests from the project root so the stage scripts and configs/ resolve, with plain `pytest` too."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)


def stage_args(overrides):
    """The command line of a stage on the CPU with the default config and `--set` overrides."""
    out = ["--config", "configs/default.yaml", "--device", "cpu", "--no-progress"]
    for o in overrides:
        out += ["--set", o]
    return out
