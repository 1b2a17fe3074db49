"""Who imports whom: the method's package (common/) imports neither the generators beside it nor
anything above it; the generators, tools and benchmarks import common/, never a stage script or a
test, and the benchmarks share their machinery through benchmarks/harness.py, not each other's scripts."""
import ast
import glob
import os

STAGES = {"pretrain_acp", "train_supervised", "evaluate", "pseudo_label", "train_semi"}
BENCHMARKS = {os.path.basename(p)[:-3] for p in glob.glob("benchmarks/*.py")}


def imported(path):
    """The top-level module names a file imports, wherever the import statement is."""
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
            if node.module == "tools" or node.module == "benchmarks":
                names |= {a.name for a in node.names}
    return names


def test_common_imports_only_itself():
    for path in sorted(glob.glob("common/*.py")):
        bad = imported(path) & (STAGES | BENCHMARKS | {"synthetic", "tools", "benchmarks", "tests"})
        assert not bad, (path, bad)


def test_tools_benchmarks_and_generators_import_no_stage_test_or_other_benchmark():
    paths = sorted(glob.glob("benchmarks/*.py") + glob.glob("tools/*.py") + glob.glob("synthetic/*.py"))
    for path in paths:
        names = imported(path)
        assert not names & STAGES, (path, names & STAGES)
        assert not {n for n in names if n.startswith("test") or n in ("tests", "conftest")}, path
        assert not names & (BENCHMARKS - {"harness"}), (path, names & BENCHMARKS)
