"""Results as data: run records -> one long pandas table (one row per run x metric) and back out.

``load_results`` reads either a results folder (``results/<profile>/<task>/runs/*.json``, every record
integrity-checked like the report does) or a file written by ``suite export`` (csv, parquet, json), so an
exported table loads back to the same frame.  ``to_rliable`` turns the table into rliable's
``{variant: (runs, envs) array}`` score dict.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.record import RunRecord
from suite.store import scan

if TYPE_CHECKING:  # pandas is imported lazily: `import suite` must stay free of numpy/pandas
    import numpy as np
    import pandas as pd

COLUMNS = ("task", "profile", "variant", "env", "seed", "status", "metric", "value", "baseline", "config_hash",
           "overrides", "commit", "dirty", "steps", "step_unit", "wall_time_s", "throughput", "reason")
FORMATS = ("csv", "parquet", "json")


class ResultsError(ValueError):
    """Bad input to the data API (unknown profile/task, unreadable export); the message is one line."""


def _rows(record: RunRecord) -> list[dict[str, Any]]:
    base = {
        "task": record.task, "profile": record.profile, "variant": record.variant, "env": record.env,
        "seed": record.seed, "status": record.status, "baseline": record.baseline, "config_hash": record.config_hash,
        # "" rather than None so csv/parquet/json all load it back as the same string
        "overrides": json.dumps(record.overrides, sort_keys=True) if record.overrides else "",
        "commit": record.provenance.git_commit, "dirty": record.provenance.git_dirty,
        "steps": record.steps, "step_unit": record.step_unit, "wall_time_s": float(record.wall_time_s),
        "throughput": float(record.throughput) if record.throughput is not None else float("nan"),
        "reason": record.last_reason_line,
    }
    metrics = {k: v for k, v in record.metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not metrics:  # a failed run has no metrics; one row keeps it (and its status) visible in the table
        return [{**base, "metric": "", "value": float("nan")}]
    return [{**base, "metric": name, "value": float("nan") if value is None else float(value)}
            for name, value in sorted(metrics.items())]


def _split(names: str | Iterable[str] | None) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = names.split(",")
    return [name.strip() for name in names if name.strip()] or None


def collect_rows(root: str | Path, profile: str, tasks: str | Iterable[str] | None = None
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the long table for one profile (all tasks, or ``tasks``), plus one line per corrupt record."""
    folder = Path(root) / profile
    if not folder.is_dir():
        present = sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
        raise ResultsError(f"{folder}: no such profile folder; profiles with results: {', '.join(present) or 'none'}")
    available = sorted(p.name for p in folder.iterdir() if (p / "runs").is_dir())
    wanted = _split(tasks) or available
    unknown = [t for t in wanted if t not in available]
    if unknown:
        raise ResultsError(f"no records for task(s) {', '.join(unknown)} under {folder}; "
                           f"tasks with records: {', '.join(available) or 'none'}")
    rows, errors = [], []
    for task in wanted:
        records, bad = scan(Path(root), profile, task)
        errors += bad
        for record in sorted(records, key=lambda r: (r.variant, r.env, r.seed)):
            rows.extend(_rows(record))
    return rows, errors


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The long table of :func:`collect_rows` rows, with its column types fixed."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The same dtypes whichever way the table came in (records, csv, parquet, json)."""
    for column in ("seed", "steps"):
        frame[column] = frame[column].astype("int64")
    for column in ("value", "wall_time_s", "throughput"):
        frame[column] = frame[column].astype("float64")
    frame["dirty"] = frame["dirty"].astype(bool)
    for column in ("task", "profile", "variant", "env", "status", "metric", "baseline", "config_hash", "overrides",
                   "commit", "step_unit", "reason"):
        frame[column] = frame[column].fillna("").astype(str)
    return frame.reset_index(drop=True)


def load_results(source: str | Path = "results", profile: str | None = None,
                 tasks: str | Iterable[str] | None = None) -> pd.DataFrame:
    """The long results table as a pandas DataFrame: one row per run x metric.

    ``source`` is a results folder (then ``profile`` is required; corrupt records are skipped with a
    warning, as in the report) or a file written by ``suite export``.  ``tasks`` narrows to some tasks.
    """
    path = Path(source)
    if path.is_file():
        frame = _read_export(path)
        if profile is not None:
            frame = frame[frame["profile"] == profile]
        wanted = _split(tasks)
        if wanted:
            frame = frame[frame["task"].isin(wanted)]
        return frame.reset_index(drop=True)
    if profile is None:
        raise ResultsError(f"{path}: a results folder needs profile=..., e.g. load_results({str(path)!r}, "
                           "profile='cpu')")
    rows, errors = collect_rows(path, profile, tasks)
    for error in errors:
        warnings.warn(f"corrupt record ignored: {error}", stacklevel=2)
    return to_frame(rows)


def _read_export(path: Path) -> pd.DataFrame:
    import pandas as pd

    kind = path.suffix.lstrip(".").lower()
    if kind == "csv":
        # keep_default_na=False: an empty `metric`/`overrides` is "" (as exported), not NaN
        frame = pd.read_csv(path, keep_default_na=False, na_values={"value": [""], "throughput": [""]})
    elif kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise ResultsError(f"{path}: reading parquet needs pyarrow: pip install "
                               "'lightning-repro-suite[parquet]'") from None
    elif kind == "json":
        # the stdlib parser: pandas' default float parser is not round-trip exact
        frame = pd.DataFrame(json.loads(path.read_text())).fillna({"value": float("nan"),
                                                                    "throughput": float("nan")})
    else:
        raise ResultsError(f"{path}: unknown export format {kind!r}; expected one of {', '.join(FORMATS)}")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path}: not a `suite export` table (missing columns {', '.join(missing)})")
    return _typed(frame[list(COLUMNS)])


def export(frame: pd.DataFrame, fmt: str, out: Any) -> None:
    """Write the table as csv, parquet or json (a list of row objects) to a path or binary/text stream."""
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "json":
        # the stdlib writes floats by repr (pandas' to_json rounds to 15 digits); NaN becomes null (valid JSON)
        rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        text = json.dumps(rows, indent=1) + "\n"
        if isinstance(out, (str, Path)):
            Path(out).write_text(text)
        else:
            out.write(text)
    elif fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ResultsError("--format parquet needs pyarrow: pip install 'lightning-repro-suite[parquet]'") from None
        frame.to_parquet(out, index=False)
    else:
        raise ResultsError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def to_rliable(frame: pd.DataFrame, metric: str, task: str | None = None,
               variants: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """rliable's score dict ``{variant: (runs, envs) array}`` of one metric over the ``ok`` runs of one task.

    Columns are the envs in sorted order; rows are the seeds a variant has in every env (a seed missing in
    some env, e.g. a failed run, is dropped for that variant with a warning: rliable needs full matrices).
    """
    rows = frame[(frame["metric"] == metric) & (frame["status"] == "ok")]
    if rows.empty:
        known = sorted(set(frame["metric"]) - {""})
        raise ResultsError(f"no ok runs with metric {metric!r}; metrics in this table: {', '.join(known) or 'none'}")
    tasks = sorted(set(rows["task"]))
    if task is None and len(tasks) > 1:
        raise ResultsError(f"the table holds several tasks ({', '.join(tasks)}); pass task=... (envs differ by task)")
    if task is not None:
        rows = rows[rows["task"] == task]
        if rows.empty:
            raise ResultsError(f"no ok runs of task {task!r} with metric {metric!r}; tasks: {', '.join(tasks)}")
    envs = sorted(set(rows["env"]))
    order = list(variants) if variants is not None else list(dict.fromkeys(rows["variant"]))
    scores = {}
    for variant in order:
        grid = rows[rows["variant"] == variant].pivot_table(index="seed", columns="env", values="value",
                                                            aggfunc="first").reindex(columns=envs)
        complete = grid.dropna()
        if len(complete) < len(grid):
            dropped = sorted(set(grid.index) - set(complete.index))
            warnings.warn(f"to_rliable: {variant}: seeds {dropped} lack {metric} in some env; dropped", stacklevel=2)
        scores[variant] = complete.to_numpy(dtype=float)
    return scores
