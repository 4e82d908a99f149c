"""Write what ``simrl gap`` found: plots, ``report.md``, a self-contained ``report.html``, ``fitted.yaml``, the patch, ``gap.json``.

Numbers a person reads are in mm, ms and percent; the JSON keeps SI units.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from simrl.gap.patch import fitted_document, randomization_patch, write_yaml
from simrl.gap.pipeline import GapResult, LogGap
from simrl.randomization.profile import InlineProfile

PATCH_NAME = "randomization_patch.yaml"


def _milli(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * 1000:.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def base_profile(result: GapResult) -> InlineProfile | str:
    """The profile the patch starts from: the one the policy trained with (an earlier patch too), else (an excitation log) ``default``."""
    from simrl.gap.envelope import training_profile

    recording = result.logs[0].recording
    found = training_profile(recording.meta, recording.path)
    return found if found is not None else "default"


def next_command(result: GapResult, out: Path) -> str:
    return f"simrl train reach --robot {result.robot.name} --randomization {out / PATCH_NAME}"


def joint_rows(gap: LogGap) -> list[list[str]]:
    """The per-joint table: RMSE nominal -> fitted (mm... of joint angle: mrad), max, delay, envelope share."""
    rows = []
    for j in gap.joints:
        delay_ms = j.delay_ticks * gap.recording.period * 1000 if math.isfinite(j.delay_ticks) else float("nan")
        rows.append(
            [
                j.joint,
                _milli(j.rmse_nominal),
                _milli(j.rmse_fitted),
                _milli(j.max_nominal),
                "-" if not math.isfinite(delay_ms) else f"{delay_ms:.1f}",
                _percent(j.inside_envelope),
            ]
        )
    return rows


JOINT_HEADER = ["joint", "RMSE nominal (mrad)", "RMSE fitted (mrad)", "max nominal (mrad)", "delay vs nominal (ms)", "inside training envelope"]


def fit_rows(result: GapResult, reasons: bool = True) -> list[list[str]]:
    """The identified values; ``reasons`` adds why a value is not identified (the terminal table leaves it to the report)."""
    rows = []
    if result.fit is None:
        return rows
    for v in result.fit.values:
        interval = "inf" if not math.isfinite(v.interval) else f"±{v.interval:.3g}"
        rows.append([v.joint or "(arm)", v.quantity, f"{v.value:.4g}", f"{v.nominal:.4g}", f"x{v.scale:.3f}" if v.joint else "", interval, v.unit, "yes" if v.identifiable else ("no: " + v.reason if reasons else "no")])
    return rows


FIT_HEADER = ["joint", "quantity", "fitted", "nominal", "scale", "95 % interval", "unit", "identified"]


def summary(result: GapResult, out: Path | None) -> dict[str, Any]:
    """Everything as JSON (``--json`` and ``gap.json``)."""
    fit = result.fit
    document: dict[str, Any] = {
        "robot": result.robot.name,
        "logs": [g.to_dict() for g in result.logs],
        "validation": result.validation.to_dict() if result.validation else None,
        "envelope": {"profile": result.envelope.profile, "worlds": result.envelope.worlds} if result.envelope else None,
        "fit": None,
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "notes": result.notes,
    }
    if fit is not None:
        document["fit"] = {
            "latency_s": fit.latency_s,
            "cost_nominal": fit.cost_nominal,
            "cost_fitted": fit.cost_fitted,
            "iterations": fit.iterations,
            "values": [v.to_dict() | {"name": v.name} for v in fit.values],
            "not_fitted": fit.not_fitted,
            "latency_profile_s": [[latency, cost] for latency, cost in fit.latency_profile.items()],
        }
        if result.validation is not None:
            real = result.validation
            document["validation_rmse_rad"] = {
                "nominal": float(np.sqrt(np.mean((real.nominal - real.real) ** 2))),
                "fitted": float(np.sqrt(np.mean((real.fitted - real.real) ** 2))) if real.fitted is not None else None,
            }
    if out is not None:
        document["out"] = str(out)
        if fit is not None:
            document["next_command"] = next_command(result, out)
    return document


def _plot_joint(gap: LogGap, index: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = gap.times - gap.times[0]
    joint = gap.joints[index]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, height_ratios=[2, 1])
    if gap.envelope is not None:
        top.fill_between(t, gap.envelope[0][:, index], gap.envelope[1][:, index], color="0.85", label="training worlds")
    top.plot(t, gap.command[:, index], color="0.5", lw=0.8, ls="--", label="command")
    top.plot(t, gap.real[:, index], color="k", lw=1.2, label="real")
    top.plot(t, gap.nominal[:, index], color="tab:red", lw=1.0, label="nominal sim")
    if gap.fitted is not None:
        top.plot(t, gap.fitted[:, index], color="tab:blue", lw=1.0, label="fitted sim")
    top.set_ylabel("rad")
    delay = joint.delay_ticks * gap.recording.period * 1000
    top.set_title(f"{joint.joint}: real lags nominal sim by {delay:.1f} ms (cross-correlation)")
    top.legend(loc="upper right", fontsize=8, ncol=3)
    bottom.plot(t, (gap.nominal[:, index] - gap.real[:, index]) * 1000, color="tab:red", lw=0.8, label="nominal - real")
    if gap.fitted is not None:
        bottom.plot(t, (gap.fitted[:, index] - gap.real[:, index]) * 1000, color="tab:blue", lw=0.8, label="fitted - real")
    bottom.set_ylabel("error (mrad)")
    bottom.set_xlabel("s")
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_outputs(result: GapResult, out: Path) -> dict[str, Path]:
    """Every file of the report into ``out`` (created); returns them by name."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    gap = result.logs[0]
    plots = []
    for i, joint in enumerate(gap.joints):
        path = out / f"{joint.joint}.png"
        _plot_joint(gap, i, path)
        plots.append(path)
    sections = _sections(result, out)
    md = [f"# simrl gap: {result.robot.name}", ""]
    for title, header, rows, text in sections:
        md += [f"## {title}", "", text, ""] + ([_markdown_table(header, rows), ""] if header else [])
    md += ["## Per joint", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    files["report.md"] = out / "report.md"
    files["report.md"].write_text("\n".join(md) + "\n")
    parts = [f"<h1>simrl gap: {html.escape(result.robot.name)}</h1>"]
    for title, header, rows, text in sections:
        parts.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>" + (_html_table(header, rows) if header else ""))
    for p in plots:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        parts.append(f'<h3>{html.escape(p.stem)}</h3><img alt="{p.stem}" src="data:image/png;base64,{data}">')
    style = "body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    files["report.html"] = out / "report.html"
    files["report.html"].write_text(f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    if result.fit is not None:
        logs = [str(g.recording.path) for g in result.logs]
        files["fitted.yaml"] = out / "fitted.yaml"
        write_yaml(files["fitted.yaml"], fitted_document(result.fit, result.robot.name, logs), "simrl gap: the identified arm (values in SI units; scale = x the training model)")
        base = base_profile(result)
        patch = randomization_patch(result.fit, result.robot, base)
        files[PATCH_NAME] = out / PATCH_NAME
        write_yaml(files[PATCH_NAME], patch, f"simrl gap: randomization centred on the identified {result.robot.name} (base profile: {base if isinstance(base, str) else base.name}).\nTrain with: {next_command(result, out)}")
    files["gap.json"] = out / "gap.json"
    files["gap.json"].write_text(json.dumps(summary(result, out), indent=2) + "\n")
    return files


def _sections(result: GapResult, out: Path) -> list[tuple[str, list[str] | None, list[list[str]], str]]:
    sections: list[tuple[str, list[str] | None, list[list[str]], str]] = []
    for gap in result.logs:
        timing = gap.timing()["observation_to_command_ms"]
        text = (
            f"{gap.recording.path.name}: {gap.recording.describe()['kind']} log, {gap.recording.duration:.1f} s, format v{gap.recording.version}; "
            f"observation to command leaving: p50 {timing['p50']} ms, p99 {timing['p99']} ms."
        )
        sections.append((f"Gap: {gap.recording.path.name}", JOINT_HEADER, joint_rows(gap), text))
    if result.fit is not None:
        fit = result.fit
        text = f"Latency {fit.latency_s * 1000:.1f} ms; cost {fit.cost_nominal:.4g} nominal -> {fit.cost_fitted:.4g} fitted."
        sections.append(("Identified", FIT_HEADER, fit_rows(result), text))
    if result.validation is not None:
        v = result.validation
        before = np.sqrt(np.mean((v.nominal - v.real) ** 2))
        after = np.sqrt(np.mean((v.fitted - v.real) ** 2)) if v.fitted is not None else float("nan")
        sections.append((f"Validation: {v.recording.path.name}", JOINT_HEADER, joint_rows(v), f"held-out RMSE {before * 1000:.2f} -> {after * 1000:.2f} mrad ({before / after:.1f}x)."))
    if result.notes:
        sections.append(("Notes", None, [], " ".join(f"{note}." for note in result.notes)))
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    sections.append(("Time", None, [], seconds + "." + ("" if result.fit is None else f" Next: {next_command(result, out)}")))
    return sections
