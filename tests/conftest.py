"""Run the tests from the project root so the stage scripts and configs/ resolve, with plain `pytest` too."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)
