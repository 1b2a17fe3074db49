"""python -m synthetic --config CONFIG [--set KEY=VALUE ...]: synthetic/make.py."""
from common.stage import run_main
from synthetic.make import main

run_main(main)
