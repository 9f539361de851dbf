"""The command line's arguments: one parser for ``suite list | validate | run | report | check | extractor | export |
compare``, with one-line errors for bad values (the commands themselves are in :mod:`suite.cli`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from typing import NoReturn

from suite import numerics
from suite.spec import MAX_SEEDS
from suite.spec_reader import clip

DEFAULT_TASKS = "tasks"
DEFAULT_RESULTS = "results"
DEFAULT_BENCHMARKS = "BENCHMARKS.md"
MAX_WORKERS = 1024  # processes or threads; more is a typo, and -1 used to hang the pool forever


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message.removeprefix('argument ')}\n")


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {clip(text)!r}")
        return value

    return parse



def build_parser(commands: Mapping[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The parser of every subcommand; ``commands`` maps a subcommand to the function that runs it (``fn``)."""
    from suite import __version__

    parser = _Parser(prog="suite", description="Benchmark suite with a reproducibility harness.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="registered baselines, envs, figures and tasks; or one baseline's "
                             "hyperparameters with their defaults")
    listing.add_argument("baseline", nargs="?", help="a baseline: print its hyperparameters, defaults and docs")
    listing.set_defaults(fn=commands["list"])
    validate = sub.add_parser("validate", help="check task specs")
    validate.add_argument("specs", nargs="*", help="spec files or folders (default: tasks/)")
    validate.set_defaults(fn=commands["validate"])

    def run_options(p: argparse.ArgumentParser, profile_default: str | None = None) -> None:
        p.add_argument("specs", nargs="*", help="spec files or folders (default: tasks/)")
        p.add_argument("--profile", default=profile_default, required=profile_default is None,
                       help="budget profile of the spec (smoke, cpu, paper)"
                       + (f"; default {profile_default}" if profile_default else ""))
        p.add_argument("--seeds", type=_whole(1, MAX_SEEDS), help="override the profile's seed count")
        p.add_argument("--variants", help="comma-separated subset of variants")
        p.add_argument("--envs", help="comma-separated subset of envs")
        p.add_argument("--workers", type=_whole(0, MAX_WORKERS), default=os.cpu_count() or 1,
                       help="worker processes (default: cores; 0 = in this process)")
        p.add_argument("--threads", type=_whole(1, MAX_WORKERS), default=1,
                       help="torch threads per run (recorded; affects numerics)")
        p.add_argument("--results", default=DEFAULT_RESULTS, help="results folder (default: results)")
        p.add_argument("--accelerator", default="cpu", help="Lightning accelerator: cpu, gpu, ... (default: cpu)")
        p.add_argument("--devices", default=1, type=lambda v: int(v) if v.isdigit() else v,
                       help="devices per run; N > 1 runs DDP for baselines that support it (default: 1)")
        p.add_argument("--precision", default="32-true", help="Lightning precision (default: 32-true)")
        p.add_argument("--numerics", choices=tuple(numerics.LEVELS), default=None,
                       help=f"CPU kernel pinning (default: ${numerics.ENV_VAR} or {numerics.DEFAULT_LEVEL}): "
                            "avx2 = same floats on every x86-64 CPU with AVX2, default = lowest ISA (also across "
                            "CPU vendors, slow), native = unpinned (fastest, floats depend on the CPU); recorded")

    run = sub.add_parser("run", help="run what is missing of a sweep (resume); --force re-runs")
    run_options(run)
    run.add_argument("--force", action="store_true", help="re-run cells that already have a valid record")
    run.add_argument("-o", "--override", action="append", metavar="KEY=VALUE",
                     help="set a hyperparameter for every run (repeatable; checked like the spec; part of the config "
                     "hash, so matching records re-run and are replaced: use --results DIR to keep both)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (cells, seeds, budget, runs to go, time estimate from records) and exit")
    run.add_argument("--executor", choices=("local", "ray"), default="local", help="where runs execute")
    run.add_argument("--ray-address", default=None, help="existing Ray cluster (default: start a local one)")
    run.add_argument("--track", action="store_true", help="log runs to Weights & Biases (offline without a key)")
    run.add_argument("--no-report", action="store_true", help="skip the tables printed after the sweep")
    run.add_argument("--checkpoint-every", type=_whole(0, 2**62), default=0, metavar="STEPS",
                     help="checkpoint a run every STEPS of its own unit (env steps, samples, ...), at the first "
                          "chunk boundary past each multiple; 0 = only by time (default: 0)")
    run.add_argument("--checkpoint-minutes", type=float, default=10.0, metavar="MIN",
                     help="checkpoint a run at most every MIN minutes of wall time; 0 = never (default: 10)")
    run.add_argument("--keep-checkpoints", action="store_true",
                     help="keep a run's checkpoint after its record is written (default: delete it)")
    run.add_argument("--no-live-log", action="store_true",
                     help="no metrics.csv live log in the runs' live folders")
    run.set_defaults(fn=commands["run"])

    report = sub.add_parser("report", help="tables, figures and BENCHMARKS.md from records")
    report.add_argument("specs", nargs="*", help="spec files or folders (default: tasks/)")
    report.add_argument("--profile", help="write this profile's tables (default: only BENCHMARKS.md)")
    report.add_argument("--results", default=DEFAULT_RESULTS, help="results folder (default: results)")
    report.add_argument("--benchmarks", default=None,
                        help=f"path of BENCHMARKS.md ('' to skip; default: {DEFAULT_BENCHMARKS}, and only when "
                        f"--results is the committed {DEFAULT_RESULTS}/)")
    report.set_defaults(fn=commands["report"])

    check = sub.add_parser("check", help="re-run a profile and compare with committed records")
    run_options(check, profile_default="smoke")
    check.add_argument("--update", action="store_true", help="rewrite the committed records on purpose")
    check.set_defaults(fn=commands["check"])

    extractor = sub.add_parser("extractor", help="the committed digits feature extractor of FID/IS/KID")
    extractor.add_argument("action", choices=("verify", "train"),
                           help="verify: check the committed weights' tensor hash; train: rebuild them from scratch")
    extractor.add_argument("--out", help="train into this folder and compare with the committed weights (exit 1 "
                                         "if they differ); default: overwrite the committed copy")
    extractor.set_defaults(fn=commands["extractor"])

    export = sub.add_parser("export", help="the run records as one long table (one row per run x metric)",
                            description="Write one row per run x metric with task, variant, env, seed, profile, "
                            "status, config hash and commit; load it back with suite.load_results(PATH).")
    export.add_argument("--profile", required=True, help="profile whose records to export (e.g. cpu, smoke)")
    export.add_argument("--tasks", help="comma-separated task names (default: every task with records)")
    export.add_argument("--format", choices=("csv", "parquet", "json"), default="csv",
                        help="table format (parquet needs the [parquet] extra; default: csv)")
    export.add_argument("--output", "-O", default="-", help="file to write ('-' = stdout, the default)")
    export.add_argument("--results", default=DEFAULT_RESULTS, help="results folder (default: results)")
    export.set_defaults(fn=commands["export"])

    compare = sub.add_parser("compare", help="compare two result folders cell by cell")
    compare.add_argument("a", help="results folder A (baseline)")
    compare.add_argument("b", help="results folder B (candidate)")
    compare.add_argument("specs", nargs="*", help="spec files or folders (default: tasks/)")
    compare.add_argument("--profile", default="cpu", help="profile to compare (default: cpu)")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level of the tests (default: 0.05)")
    compare.add_argument("--against-paper", action="store_true", help="also compare B with the spec's references")
    compare.add_argument("--fail-on-worse", action="store_true", help="exit 1 when a cell got significantly worse")
    compare.set_defaults(fn=commands["compare"])
    return parser
