"""``simrl gap LOG [LOG...]``: the command line of the gap checker (the work lives in ``simrl.gap.pipeline``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def gap_command(
    logs: list[Path] = typer.Argument(..., help="Deploy logs (.npz from `simrl deploy`, excitation or policy runs) of one arm."),
    validate: Optional[Path] = typer.Option(None, "--validate", help="A held-out log (another excitation signal or seed): RMSE before and after the fit on data it never saw."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the report, fitted.yaml and randomization_patch.yaml (default: runs/gap/LOG-TIME)."),
    worlds: int = typer.Option(32, "--worlds", min=0, help="Worlds drawn from the policy's training profile for the envelope (0: skip)."),
    no_fit: bool = typer.Option(False, "--no-fit", help="Only replay and measure the gap; identify nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Measure the sim-to-real gap from deploy logs, identify the arm, and propose a randomization patch.

    Replays the logged commands open-loop on the nominal training model (same
    timestep, integrator and solver) and on worlds drawn from the policy's own
    randomization profile; reports per joint the tracking error, the delay, the
    step response and the share of the real motion the training worlds cover.
    Then fits per-joint damping, friction, armature, kp and kd errors (and the
    torque limit where the log reaches it) jointly with the command latency
    (mujoco.sysid, Gauss-Newton), with 95 % intervals; a value the data cannot
    pin down is flagged. Writes report.md, report.html, fitted.yaml and
    randomization_patch.yaml, and prints the `simrl train` command to run next.
    Record a log for it with `simrl deploy --robot R --excite mixed`.
    """
    from simrl.gap.pipeline import GapRequest, run_gap
    from simrl.gap.report import FIT_HEADER, JOINT_HEADER, fit_rows, joint_rows, next_command, summary, write_outputs

    request = GapRequest(logs=tuple(logs), validate=validate, worlds=worlds, fit=not no_fit)
    with stderr.status("simrl gap: reading the logs") as status:
        result = run_gap(request, progress=lambda message: status.update(f"simrl gap: {message}"))
        clock = time.perf_counter()
        folder = out if out is not None else Path("runs") / "gap" / f"{Path(logs[0]).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        status.update("simrl gap: writing the report")
        files = write_outputs(result, folder)
        result.seconds["report"] = time.perf_counter() - clock
    document = summary(result, folder)
    document["files"] = {name: str(path) for name, path in files.items()}
    (folder / "gap.json").write_text(json.dumps(document, indent=2) + "\n")
    if as_json:
        print(json.dumps(document, indent=2))
        return
    for gap in result.logs + ([result.validation] if result.validation else []):
        timing = gap.timing()["observation_to_command_ms"]
        table = Table(title=f"{gap.recording.path.name} (v{gap.recording.version}; observation to command p50 {timing['p50']} ms)")
        for column in JOINT_HEADER:
            table.add_column(column)
        for row in joint_rows(gap):
            table.add_row(*row)
        stdout.print(table)
    if result.fit is not None:
        table = Table(title=f"identified: latency {result.fit.latency_s * 1000:.1f} ms")
        for column in FIT_HEADER:
            table.add_column(column)
        for row in fit_rows(result, reasons=False):
            table.add_row(*row)
        stdout.print(table)
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    stdout.print(f"time: {seconds}; report: {folder / 'report.html'}", highlight=False, markup=False)
    for note in result.notes:
        stdout.print(f"note: {note}", highlight=False, markup=False)
    if result.fit is not None:
        stdout.print(f"next: {next_command(result, folder)}", highlight=False, markup=False)
