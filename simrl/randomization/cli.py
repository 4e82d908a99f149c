"""``simrl randomization show|validate|list`` (registered by ``simrl.cli``).

Errors are ``SimrlError``s, which ``simrl.cli.main`` prints as one line with
exit status 2. Heavy modules (MuJoCo through the robots) are imported inside the
commands so ``simrl --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from simrl.randomization.profile import ResolvedProfile
    from simrl.randomization.table import RangeRow
    from simrl.robots import Robot

app = typer.Typer(help="Inspect and check domain-randomization profiles (randomization/*.yaml).", no_args_is_help=True)

stdout = Console(soft_wrap=True)

PROFILE_HELP = "Profile name in randomization/ (see `simrl randomization list`) or a path to a .yaml file."


@app.command("show")
def show_command(
    robot: str = typer.Option("so101", "--robot", help="Robot name (see `simrl robots`) or a path to a robot folder."),
    profile: str = typer.Option("default", "--profile", help=PROFILE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as a JSON list."),
) -> None:
    """Every randomized quantity per joint and body: nominal value, distribution and the effective range it gives."""
    from simrl.randomization.profile import KINDS, resolve_profile
    from simrl.randomization.table import effective_ranges
    from simrl.robots import load_robot

    arm = load_robot(robot)
    resolved = resolve_profile(profile, arm)
    rows = effective_ranges(arm, resolved)
    if as_json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
        return
    table = _range_table(rows, title=f"randomization '{resolved.name}' for {arm.name} ({resolved.path})")
    unused = [kind for kind in KINDS if kind not in resolved.kinds]
    table.caption = f"not randomized: {', '.join(unused)}" if unused else None
    _print_wide(table)


def _range_table(rows: list[RangeRow], title: str) -> Table:
    """The rows grouped by kind (a section each), the kind named on its first row only
    (a kind given as a list: each entry named on its first row, ``joint_damping.1``)."""
    table = Table(title=title)
    for column in ("kind", "target", "nominal", "distribution", "min", "max", "unit", "resample", "note"):
        table.add_column(column, justify="right" if column in ("nominal", "min", "max") else "left")
    previous: RangeRow | None = None
    for row in rows:
        if previous is not None and row.kind != previous.kind:
            table.add_section()
        same_entry = previous is not None and (row.kind, row.entry) == (previous.kind, previous.entry)
        table.add_row(
            "" if same_entry else row.label, row.target, _cell(row.nominal), row.distribution,
            _cell(row.min), _cell(row.max), row.unit, row.resample, row.note,
        )
        previous = row
    return table


def _print_wide(table: Table) -> None:
    """Into a pipe or file the table keeps its natural width: squeezed to 80 columns every cell would be cut."""
    if stdout.is_terminal:
        stdout.print(table)
        return
    natural = stdout.measure(table, options=stdout.options.update_width(10_000)).maximum
    Console(width=max(natural, stdout.width), soft_wrap=True).print(table)


def _cell(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


@app.command("validate")
def validate_command(
    file: str = typer.Argument(..., help=PROFILE_HELP),
    robots: Optional[list[str]] = typer.Option(
        None, "--robot", help="Resolve against this robot (repeatable). Default: every shipped robot."
    ),
) -> None:
    """Check a profile, its `robots:` sections included, and resolve it against each robot so unknown joints and bodies show."""
    from simrl.randomization.profile import load_profile
    from simrl.robots import available_robots, load_robot

    _, path = load_profile(file)
    arms = [load_robot(name) for name in (robots or available_robots())]
    _check_robot_sections(path, sorted({*available_robots(), *(arm.name for arm in arms)}))
    kinds: set[str] = set()
    for arm in arms:
        kinds.update(p.kind for p in _resolve_for(path, arm).parameters)
    print(f"ok: {path} ({len(kinds)} parameter{'' if len(kinds) == 1 else 's'}; robots: {', '.join(arm.name for arm in arms)})")


def _resolve_for(path: Path, arm: Robot) -> ResolvedProfile:
    """``resolve_profile``, its error saying which robot it was resolved for (a file may fit one arm and not another)."""
    from simrl.errors import SimrlError
    from simrl.randomization.profile import resolve_profile

    try:
        return resolve_profile(path, arm)
    except SimrlError as exc:
        raise SimrlError(f"{exc} (resolving for robot '{arm.name}')") from None


def _check_robot_sections(path: Path, known: list[str]) -> None:
    """A ``robots:`` section for an arm that does not exist would be ignored silently: refuse it."""
    from simrl.config import read_yaml
    from simrl.errors import SimrlError, did_you_mean

    data = read_yaml(path)
    sections = data.get("robots") if isinstance(data, dict) else None
    for name in sections or {}:
        if name not in known:
            suggestion = did_you_mean(name, known)
            raise SimrlError(f"{path}: field 'robots.{name}': unknown robot{suggestion}; known: {', '.join(known)} (or pass --robot)")


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """The shipped profiles with their descriptions."""
    from simrl.randomization.profile import available_profiles, load_profile

    rows = []
    for name in available_profiles():
        profile, path = load_profile(name)
        rows.append({"name": name, "parameters": len(profile.parameters()), "description": profile.description, "path": str(path)})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="simrl randomization profiles")
    for column in ("name", "parameters", "description"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], str(r["parameters"]), r["description"])
    stdout.print(table)
