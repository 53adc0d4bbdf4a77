"""What a study leaves behind: best.yaml (the best trial's config, ready to train), summary.json,
PNG plots, and the table printed at the end."""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import config as config_io
from ..errors import first_line
from ..fileio import atomic_write, atomic_write_json, atomic_write_text
from .space import SearchSpace, set_key
from .storage import mask_url
from .trials import build_train_config, resolve_config

def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(str(exc))}"[:500]

def json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))

def _trial_row(t) -> dict[str, Any]:
    row = {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
           "steps": t.user_attrs.get("steps"), "seconds": t.user_attrs.get("seconds"),
           "val": t.user_attrs.get("val")}
    for key in ("train_s_per_step", "rtf", "error", "resumed_from", "dir"):
        if key in t.user_attrs:
            row[key] = t.user_attrs[key]
    retried = t.system_attrs.get("failed_trial")
    if retried is not None:
        row["retry_of"] = retried
    return row

def _save_figure(ax, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = ax.figure if hasattr(ax, "figure") else ax
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)

def write_plots(study, out: Path) -> tuple[dict[str, str | None], list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    plots: dict[str, str | None] = {"history": None, "intermediate": None, "importances": None}
    notes: list[str] = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        jobs = [("history", "optimization_history.png", ovm.plot_optimization_history, 1),
                ("intermediate", "intermediate_values.png", ovm.plot_intermediate_values, 0),
                ("importances", "param_importances.png", ovm.plot_param_importances, 2)]
        for key, filename, fn, need in jobs:
            if len(complete) < need:
                notes.append(f"{key} plot skipped: needs {need} completed trial(s), have {len(complete)}")
                continue
            if key == "intermediate" and not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
                notes.append("intermediate plot skipped: no trial reported a value yet")
                continue
            try:
                _save_figure(fn(study), out / filename)
                plots[key] = filename
            except Exception as exc:  # a plot must never lose the study's results
                notes.append(f"{key} plot skipped: {one_line(exc)}")
    return plots, notes

def write_report(study, out: Path, space: SearchSpace, url: str, metric: str, direction: str, budget: int,
                 eval_every: int, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "study": study.study_name, "storage": mask_url(url), "direction": direction, "metric": metric,
        "search_space": str(space.path), "budget_steps": budget, "eval_every": eval_every, "out": str(out),
        "n_trials": len(trials), "states": states, "best": None, "best_config": None,
    }
    if complete:
        best = study.best_trial
        final = best.user_attrs.get("config")
        if final is None:  # a trial recorded without its config: rebuild it from its parameters
            final, _ = resolve_config(space, lambda p: best.params[p.name], study.user_attrs.get("overrides", []))
        final = copy.deepcopy(final)
        base_steps = study.user_attrs.get("base_max_steps")
        if base_steps:
            set_key(final, "run.max_steps", int(base_steps))
        cfg = build_train_config(final)
        header = (f"# Best trial {best.number} of study {study.study_name!r}: validation {metric} = {best.value:.4f}\n"
                  f"# after {best.user_attrs.get('steps', budget)} of a {budget}-step budget; run.max_steps is the "
                  f"base config's.\n# Train it: specdenoise train --config {out / 'best.yaml'} --out runs/NAME\n")
        atomic_write_text(out / "best.yaml", header + yaml.safe_dump(config_io.to_dict(cfg), sort_keys=False))
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params,
                           "val": best.user_attrs.get("val"), "dir": best.user_attrs.get("dir")}
        summary["best_config"] = str(out / "best.yaml")
    plots, notes = write_plots(study, out)
    summary["plots"] = plots
    summary["notes"] = notes
    summary["trials"] = [_trial_row(t) for t in trials]
    atomic_write_json(out / "summary.json", json_safe(summary))
    for line in format_summary(summary):
        log(line)
    return summary

def format_summary(summary: dict[str, Any], top: int = 10) -> list[str]:
    states = summary["states"]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in states.items() if n)
    lines = [f"study {summary['study']!r}: {summary['n_trials']} trial(s) ({counts or 'none'})"]
    metric = summary["metric"]
    rows = [r for r in summary["trials"] if r["value"] is not None]
    sign = -1 if summary["direction"] == "maximize" else 1
    rows.sort(key=lambda r: (r["state"] != "COMPLETE", sign * r["value"]))  # pruned: value when stopped
    if rows:
        lines.append(f"  {'trial':>5}  {'state':<8}  {metric:>8}  {'steps':>5}  params")
        for r in rows[:top]:
            params = ", ".join(f"{k}={_short(v)}" for k, v in r["params"].items())
            lines.append(f"  {r['number']:>5}  {r['state'].lower():<8}  {r['value']:>8.4f}  {r['steps'] or '':>5}  {params}")
    best = summary["best"]
    if best:
        lines.append(f"best trial {best['number']}: {metric} = {best['value']:.4f}; "
                     f"train it with: specdenoise train --config {summary['best_config']} --out runs/NAME")
    else:
        lines.append("no completed trial yet: best.yaml not written")
    written = [p for p in summary["plots"].values() if p]
    lines.append(f"summary.json{' and ' + ', '.join(written) if written else ''} written in {summary['out']}")
    for note in summary["notes"]:
        lines.append(f"  ({note})")
    return lines

def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
