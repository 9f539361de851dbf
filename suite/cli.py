"""Command line: ``suite list | validate | run | report | check | compare``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from suite import numerics, registry
from suite.spec import SpecError, TaskSpec, load_specs

DEFAULT_TASKS = "tasks"
DEFAULT_RESULTS = "results"


def _specs(paths: list[str]) -> list[TaskSpec]:
    return load_specs(paths or [DEFAULT_TASKS])


def cmd_list(args: argparse.Namespace) -> int:
    registry.load_all()
    print("Baselines:")
    for name, entry in sorted(registry.BASELINES.items()):
        print(f"  {name:<22} envs: {', '.join(entry.env_families):<28} {entry.description}")
    print("Envs / data sets:")
    for name, env in sorted(registry.ENVS.items()):
        print(f"  {name:<34} family: {env.family:<16} {env.description}")
    print("Figures:", ", ".join(sorted(registry.FIGURES)) or "none")
    print("Claim kinds: compare,", ", ".join(sorted(registry.CLAIM_CHECKERS)) or "")
    if Path(DEFAULT_TASKS).is_dir():
        print("Tasks:")
        for spec in _specs([]):
            profiles = ", ".join(f"{p.name}({len(p.variants)}x{len(p.envs)}x{p.seeds})" for p in spec.profiles.values())
            print(f"  {spec.name:<22} {spec.path}  profiles: {profiles}")
    for module, error in registry.IMPORT_ERRORS.items():
        print(f"! {module} failed to import: {error}", file=sys.stderr)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    specs = _specs(args.specs)
    for spec in specs:
        runs = sum(p.seeds for p in spec.profiles.values() for v in p.variants for e in p.envs
                   if spec.variants[v].runs_on(e))
        print(f"ok  {spec.path}  ({len(spec.variants)} variants, {len(spec.claims)} claims, {runs} runs over profiles)")
    return 0


def _jobs(args: argparse.Namespace, specs: list[TaskSpec]):
    from suite import registry
    from suite.distributed import world_size_of
    from suite.runner import plan_jobs

    jobs = {}
    for spec in specs:
        if args.profile not in spec.profiles:
            raise SpecError(f"{spec.path}: profiles: no profile {args.profile!r}; has {', '.join(spec.profiles)}")
        jobs[spec.name] = plan_jobs(spec, args.profile, args.seeds, args.threads, args.accelerator, args.devices,
                                    args.precision, _split(args.variants), _split(args.envs), args.numerics)
        if world_size_of(args.devices) > 1:
            single = sorted({job.baseline for job in jobs[spec.name]
                             if not registry.get_baseline(job.baseline).distributed})
            if single:
                raise SpecError(f"{spec.path}: --devices {args.devices}: baseline(s) {', '.join(single)} are "
                                "single-device; run them with --devices 1 or narrow --variants")
        if spec.profiles[args.profile].skip:
            print(f"skipping {spec.name} under `{args.profile}`: {spec.profiles[args.profile].skip}", file=sys.stderr)
    return jobs


def _split(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def cmd_run(args: argparse.Namespace) -> int:
    from suite.report import build_report, results_table, write_task_outputs
    from suite.sweep import run_sweep

    specs = _specs(args.specs)
    jobs = _jobs(args, specs)
    root = Path(args.results)
    all_jobs = [job for spec in specs for job in jobs[spec.name]]
    if args.track:
        from suite.tracking import enable_tracking

        all_jobs = enable_tracking(all_jobs)
    if args.executor == "ray":
        from suite.executors.ray_executor import run_sweep_ray

        summary = run_sweep_ray(all_jobs, root, force=args.force, address=args.ray_address)
    else:
        summary = run_sweep(all_jobs, root, args.workers, force=args.force, in_process=args.workers == 0)
    if not args.no_report:
        for spec in specs:
            report = build_report(spec, args.profile, root)
            markdown, _ = write_task_outputs(report, root)
            print(f"\n## {spec.title} — {args.profile} ({markdown})\n\n{results_table(report)}")
    failed = summary.failed
    for record in failed:
        reason = (record["reason"] or "").strip().splitlines()
        print(f"FAILED {record['task']}/{record['variant']}/{record['env']}/seed{record['seed']}: "
              f"{reason[-1] if reason else ''}", file=sys.stderr)
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from suite.report import build_report, claims_block, results_table, write_benchmarks, write_task_outputs

    specs = _specs(args.specs)
    root = Path(args.results)
    if args.profile:
        for spec in specs:
            report = build_report(spec, args.profile, root)
            markdown, csv_path = write_task_outputs(report, root)
            print(f"## {spec.title} — {args.profile}\n\n{results_table(report)}")
            if report.claims:
                print(claims_block(report.claims))
            print(f"wrote {markdown}, {csv_path}" + "".join(f", {p}" for p in report.figures))
    if args.benchmarks:
        path = write_benchmarks(specs, root, Path(args.benchmarks))
        print(f"wrote {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from suite.check import check, mismatch_table

    specs = _specs(args.specs)
    jobs = _jobs(args, specs)
    mismatches, problems = check(specs, jobs, Path(args.results), args.workers, update=args.update)
    for line in problems:
        print(line, file=sys.stderr if not args.update else sys.stdout)
    if mismatches:
        print(f"\n{len(mismatches)} metric(s) differ from the committed records:\n")
        print(mismatch_table(mismatches))
    total = sum(len(v) for v in jobs.values())
    if args.update:
        print(f"check --update: {total} runs re-recorded under {args.results}/{args.profile}")
        return 0
    ok = not mismatches and not problems
    print(f"check {'passed' if ok else 'FAILED'}: {total} runs compared with {args.results}/{args.profile}")
    return 0 if ok else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from suite.compare import compare_roots

    text, worse = compare_roots(_specs(args.specs), args.profile, Path(args.a), Path(args.b), args.alpha,
                                against_paper=args.against_paper)
    print(text)
    return 1 if worse and args.fail_on_worse else 0


def cmd_extractor(args: argparse.Namespace) -> int:
    from suite.metrics.generative import build_digits_classifier, digits_extractor_paths, load_digits_classifier

    if args.action == "verify":
        _, card = load_digits_classifier()
        print(f"ok  {digits_extractor_paths()[0]}  tensor sha256 {card['tensor_sha256']}  "
              f"test accuracy {card['test_accuracy']:.5f}")
        return 0
    card = build_digits_classifier(Path(args.out) if args.out else None)
    where = digits_extractor_paths(Path(args.out) if args.out else None)[0]
    verdict = ("bit-identical to" if card["matches_committed"] else "DIFFERS from") + " the committed weights"
    print(f"wrote {where}  tensor sha256 {card['tensor_sha256']}  test accuracy {card['test_accuracy']:.5f}  "
          f"(numerics {card['numerics']}): {verdict}")
    return 0 if card["matches_committed"] or not args.out else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="suite", description="Benchmark suite with a reproducibility harness.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered baselines, envs, figures and tasks").set_defaults(fn=cmd_list)
    validate = sub.add_parser("validate", help="check task specs")
    validate.add_argument("specs", nargs="*", help="spec files or folders (default: tasks/)")
    validate.set_defaults(fn=cmd_validate)

    def run_options(p: argparse.ArgumentParser, profile_default: str | None = None) -> None:
        p.add_argument("specs", nargs="*", help="spec files or folders (default: tasks/)")
        p.add_argument("--profile", default=profile_default, required=profile_default is None)
        p.add_argument("--seeds", type=int, help="override the profile's seed count")
        p.add_argument("--variants", help="comma-separated subset of variants")
        p.add_argument("--envs", help="comma-separated subset of envs")
        p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="worker processes (default: cores; 0 = in this process)")
        p.add_argument("--threads", type=int, default=1, help="torch threads per run (recorded; affects numerics)")
        p.add_argument("--results", default=DEFAULT_RESULTS)
        p.add_argument("--accelerator", default="cpu")
        p.add_argument("--devices", default=1, type=lambda v: int(v) if v.isdigit() else v)
        p.add_argument("--precision", default="32-true")
        p.add_argument("--numerics", choices=tuple(numerics.LEVELS), default=None,
                       help=f"CPU kernel pinning (default: ${numerics.ENV_VAR} or {numerics.DEFAULT_LEVEL}): "
                            "avx2 = same floats on every x86-64 CPU with AVX2, default = lowest ISA (also across "
                            "CPU vendors, slow), native = unpinned (fastest, floats depend on the CPU); recorded")

    run = sub.add_parser("run", help="run what is missing of a sweep (resume); --force re-runs")
    run_options(run)
    run.add_argument("--force", action="store_true")
    run.add_argument("--executor", choices=("local", "ray"), default="local")
    run.add_argument("--ray-address", default=None, help="existing Ray cluster (default: start a local one)")
    run.add_argument("--track", action="store_true", help="log runs to Weights & Biases (offline without a key)")
    run.add_argument("--no-report", action="store_true")
    run.set_defaults(fn=cmd_run)

    report = sub.add_parser("report", help="tables, figures and BENCHMARKS.md from records")
    report.add_argument("specs", nargs="*")
    report.add_argument("--profile", help="write this profile's tables (default: only BENCHMARKS.md)")
    report.add_argument("--results", default=DEFAULT_RESULTS)
    report.add_argument("--benchmarks", default="BENCHMARKS.md", help="path of BENCHMARKS.md ('' to skip)")
    report.set_defaults(fn=cmd_report)

    check = sub.add_parser("check", help="re-run a profile and compare with committed records")
    run_options(check, profile_default="smoke")
    check.add_argument("--update", action="store_true", help="rewrite the committed records on purpose")
    check.set_defaults(fn=cmd_check)

    extractor = sub.add_parser("extractor", help="the committed digits feature extractor of FID/IS/KID")
    extractor.add_argument("action", choices=("verify", "train"),
                           help="verify: check the committed weights' tensor hash; train: rebuild them from scratch")
    extractor.add_argument("--out", help="train into this folder and compare with the committed weights (exit 1 "
                                         "if they differ); default: overwrite the committed copy")
    extractor.set_defaults(fn=cmd_extractor)

    compare = sub.add_parser("compare", help="compare two result folders cell by cell")
    compare.add_argument("a", help="results folder A (baseline)")
    compare.add_argument("b", help="results folder B (candidate)")
    compare.add_argument("specs", nargs="*")
    compare.add_argument("--profile", default="cpu")
    compare.add_argument("--alpha", type=float, default=0.05)
    compare.add_argument("--against-paper", action="store_true", help="also compare B with the spec's references")
    compare.add_argument("--fail-on-worse", action="store_true", help="exit 1 when a cell got significantly worse")
    compare.set_defaults(fn=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "numerics", None) is None and hasattr(args, "threads"):
            args.numerics = numerics.requested_level()
        if getattr(args, "numerics", None):
            numerics.apply(args.numerics)  # before any worker process starts: they inherit the pin
        return args.fn(args)
    except (SpecError, numerics.NumericsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyError as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished runs are recorded and a re-run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
