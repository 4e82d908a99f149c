"""The data folders travel inside the wheel and are found from there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_data_and_finds_it(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")], cwd=REPO, check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("simrl-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "simrl/_data/robots/so101/robot.xml").is_file()
    assert (site / "simrl/_data/rewards/reach.yaml").is_file()
    assert (site / "simrl/_data/recipes/reach-so101-ppo.yaml").is_file()
    # Run from an unrelated folder with only the unpacked wheel on the path: no clone to fall back on.
    probe = (
        "from simrl.paths import data_dir; from simrl.robots import load_robot; from simrl.train.config import recipe_path; "
        "print(data_dir('robots')); print(load_robot('fr3').n_arm); print(recipe_path('reach', 'fr3', 'sac').is_file())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    folder, n_arm, has_recipe = result.stdout.split()
    assert Path(folder) == site / "simrl/_data/robots" and n_arm == "7" and has_recipe == "True"
