"""Command line: ``suite list | validate | run | report | check | extractor | export | compare`` (arguments in
:mod:`suite.cli_args`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from suite import cli_args, numerics, registry
from suite.cli_args import DEFAULT_BENCHMARKS, DEFAULT_RESULTS, DEFAULT_TASKS
from suite.spec import SpecError, TaskSpec, load_specs
from suite.spec_reader import clip


def _specs(paths: list[str]) -> list[TaskSpec]:
    return load_specs(paths or [DEFAULT_TASKS])


def cmd_list(args: argparse.Namespace) -> int:
    if args.baseline:
        return _list_baseline(args.baseline)
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
        print("Tasks (profile(VxExS) = variants x envs x seeds = runs; [skipped] = the profile cannot run here):")
        for spec in _specs([]):
            profiles = ", ".join(f"{p.name}({len(p.variants)}x{len(p.envs)}x{p.seeds})"
                                 + (" [skipped]" if p.skip else "") for p in spec.profiles.values())
            print(f"  {spec.name:<22} {spec.path}  profiles: {profiles}")
    for module, error in registry.IMPORT_ERRORS.items():
        print(f"! {module} failed to import: {error}", file=sys.stderr)
    return 0


def _list_baseline(name: str) -> int:
    """Every hyperparameter of one baseline: today the only other way to learn them is a validation error."""
    entry = registry.get_baseline(name)  # unknown: KeyError -> one line and exit 2 in main()
    params = registry.hyperparameters(name)
    print(f"{entry.name}: {entry.description}")
    print(f"  envs: {', '.join(entry.env_families)}; module: "
          + (f"{entry.module_class.__module__}.{entry.module_class.__qualname__}" if entry.module_class else "none")
          + f"; multi-device: {'yes' if entry.distributed else 'no'}")
    print(f"Hyperparameters ({len(params)}; set them in a spec's variants or with `suite run -o NAME=VALUE`):")
    width = max((len(p.name) for p in params), default=0)
    shown = [clip(repr(p.default)) for p in params]
    value_width = min(max((len(v) for v in shown), default=0), 24)
    for param, value in zip(params, shown):
        formerly = f" (formerly {param.former})" if param.former else ""
        print(f"  {param.name:<{width}}  {value:<{value_width}}  {param.doc or '(undocumented)'}{formerly}".rstrip())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    specs = _specs(args.specs)
    for spec in specs:
        runs = sum(p.seeds for p in spec.profiles.values() for v in p.variants for e in p.envs
                   if spec.variants[v].runs_on(e))
        print(f"ok  {spec.path}  ({len(spec.variants)} variants, {len(spec.claims)} claims, {runs} runs over profiles)")
    return 0


def _jobs(args: argparse.Namespace, specs: list[TaskSpec]):
    from suite.api import world_size_of
    from suite.jobs import plan_jobs

    jobs = {}
    for spec in specs:
        if args.profile not in spec.profiles:
            raise SpecError(f"{spec.path}: profiles: no profile {args.profile!r}; has {', '.join(spec.profiles)}")
    _check_subset(specs, args.profile, "--variants", "variant", _split(args.variants))
    _check_subset(specs, args.profile, "--envs", "env", _split(args.envs))
    for spec in specs:
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


def _check_subset(specs: list[TaskSpec], profile: str, option: str, what: str, names: list[str] | None) -> None:
    """Each name given to ``--variants``/``--envs`` must be one the profile runs: a typo must not run 0 runs."""
    for name in names or []:
        declared = [spec for spec in specs if name in (spec.variants if what == "variant" else spec.envs)
                    or name in getattr(spec.profiles[profile], what + "s")]
        if not declared:
            valid = sorted({n for spec in specs for n in getattr(spec.profiles[profile], what + "s")})
            raise SpecError(f"{option}: unknown {what} {clip(name)!r}; profile {profile!r} runs: {', '.join(valid)}")
        if not any(name in getattr(spec.profiles[profile], what + "s") for spec in declared):
            raise SpecError(f"{option}: {what} {clip(name)!r} is not in profile {profile!r} of "
                            f"{', '.join(str(spec.path) for spec in declared)}")


def _split(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def cmd_run(args: argparse.Namespace) -> int:
    from suite.overrides import apply_overrides, dry_run_plan, parse_overrides
    from suite.report import build_report, results_table
    from suite.report_pages import overrides_note, write_task_outputs
    from suite.sweep import run_sweep

    specs = _specs(args.specs)
    jobs = _jobs(args, specs)
    root = Path(args.results)
    overrides = parse_overrides(args.override)
    jobs = {spec.name: apply_overrides(spec, jobs[spec.name], overrides) for spec in specs}
    if args.dry_run:
        from suite.sweep import pending

        for spec in specs:
            todo, _, _ = pending(jobs[spec.name], root, force=args.force)
            print(dry_run_plan(spec, args.profile, jobs[spec.name], todo, root, args.workers))
        print("dry run: nothing was run")
        return 0
    all_jobs = [job for spec in specs for job in jobs[spec.name]]
    from suite.jobs import with_live

    all_jobs = with_live(all_jobs, root, args.checkpoint_every, args.checkpoint_minutes * 60.0,
                         args.keep_checkpoints, live_log=not args.no_live_log)
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
            _print_corrupt(report.errors, report.stale)
            markdown, _ = write_task_outputs(report, root)
            if report.records:  # a skipped task has no table to show (`_jobs` said why)
                print(f"\n## {spec.title} — {args.profile}{overrides_note(report.records)} ({markdown})\n\n"
                      f"{results_table(report)}")
    failed = summary.failed
    for record in failed:
        print(f"FAILED {record.key_label}: {record.last_reason_line}", file=sys.stderr)
    return 1 if failed else 0


def _print_corrupt(errors: list[str], stale: list[str] = ()) -> None:
    # on the console too, not only in table.md: a reader of the terminal must see that a cell lost a seed
    for error in errors:
        print(f"corrupt record ignored (re-run the sweep to replace it): {error}", file=sys.stderr)
    for note in stale:
        print(f"stale records left out (re-run the sweep to replace them): {note}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    from suite.report import build_report, results_table
    from suite.report_pages import claims_block, overrides_note, write_benchmarks, write_task_outputs

    specs = _specs(args.specs)
    root = Path(args.results)
    if args.profile:
        statuses: Counter = Counter()
        for spec in specs:
            report = build_report(spec, args.profile, root)
            _print_corrupt(report.errors, report.stale)
            markdown, csv_path = write_task_outputs(report, root)
            skip = spec.profiles[args.profile].skip if args.profile in spec.profiles else None
            if not report.records:  # no empty tables: one line says why there is nothing
                why = (f"skipped ({skip})" if skip
                       else f"no records (run `suite run {spec.path} --profile {args.profile}`)")
                print(f"## {spec.title} — {args.profile}: {why}\n")
                continue
            statuses.update(r.status for r in report.records)
            print(f"## {spec.title} — {args.profile}{overrides_note(report.records)}\n\n{results_table(report)}")
            if report.claims:
                print(claims_block(report.claims))
            print(f"wrote {markdown}, {csv_path}" + "".join(f", {p}" for p in report.figures) + "\n")
        print(f"{args.profile}: {sum(statuses.values())} runs — {statuses['ok']} ok, {statuses['diverged']} diverged, "
              f"{statuses['failed']} failed; tables and figures in {root}/{args.profile}/<task>/ (table.md, figures/)")
    benchmarks = args.benchmarks
    if benchmarks is None:
        # BENCHMARKS.md describes the committed results; another folder's tables must not replace it silently
        benchmarks = DEFAULT_BENCHMARKS if root.resolve() == Path(DEFAULT_RESULTS).resolve() else ""
        if not benchmarks:
            print(f"BENCHMARKS.md not written: --results {root} is not the committed results folder "
                  f"({DEFAULT_RESULTS}/); pass --benchmarks PATH to write one", file=sys.stderr)
    if benchmarks:
        path = write_benchmarks(specs, root, Path(benchmarks), on_corrupt=_print_corrupt)
        print(f"wrote {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from suite.check import check, mismatch_table

    specs = _specs(args.specs)
    jobs = _jobs(args, specs)
    mismatches, problems, notes = check(specs, jobs, Path(args.results), args.workers, update=args.update)
    for line in problems:
        print(line, file=sys.stderr if not args.update else sys.stdout)
    for line in notes:
        print(line)
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


def cmd_export(args: argparse.Namespace) -> int:
    from suite.results import ResultsError, collect_rows, export, to_frame

    try:
        rows, errors = collect_rows(Path(args.results), args.profile, args.tasks)
        for error in errors:
            print(f"warning: corrupt record left out: {error}", file=sys.stderr)
        frame = to_frame(rows)
        if args.output == "-":
            if args.format == "parquet":
                raise ResultsError("--format parquet is binary; give a file with --output PATH")
            try:
                export(frame, args.format, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:  # `suite export ... | head`: the reader has all it wanted
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        else:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            export(frame, args.format, args.output)
            print(f"wrote {args.output}: {len(frame)} rows ({frame['task'].nunique()} tasks, "
                  f"{len(frame.drop_duplicates(['task', 'variant', 'env', 'seed']))} runs)", file=sys.stderr)
    except ResultsError as error:
        raise SpecError(str(error)) from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    return cli_args.build_parser({name.removeprefix("cmd_"): fn for name, fn in globals().items()
                                  if name.startswith("cmd_")})


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
