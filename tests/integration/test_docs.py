"""The README stays true: the lab it shows is the example a test applies, and
the commands and paths it names exist. No root needed."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ruamel.yaml import YAML

from tests.sandbox import config_files

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_readme_lab_is_examples_bridge() -> None:
    first_yaml = re.search(r"```yaml\n(.*?)```", README, re.S)
    assert first_yaml is not None, "the README shows no YAML lab"
    assert "(`examples/bridge/lab.yaml`)" in README[: first_yaml.start()]
    yaml = YAML(typ="safe")
    assert yaml.load(first_yaml.group(1)) == yaml.load((ROOT / "examples/bridge/lab.yaml").read_text())


def test_the_two_commands_exist_and_ci_runs_the_second() -> None:
    for script in ("scripts/try", "scripts/test", ".ci/run"):
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"
    assert "./scripts/try" in README and "./scripts/test" in README
    assert "./scripts/test" in (ROOT / ".ci/run").read_text()


def test_every_example_the_readme_names_exists() -> None:
    for name in set(re.findall(r"scripts/try ([a-z-]+)", README)):
        assert (ROOT / "examples" / name).is_dir(), f"README names examples/{name}"


def test_every_example_holds_config_files_that_say_first_what_the_lab_is() -> None:
    # an example is a directory of config files, or of variants that are (examples/cluster:
    # each variant a whole repository, and no config file beside them)
    for example in (ROOT / "examples").iterdir():
        variants = sorted(path for path in example.iterdir() if path.is_dir())
        assert not (variants and config_files(example)), f"examples/{example.name}: config files beside variants"
        for lab in variants or [example]:
            name = lab.relative_to(ROOT / "examples")
            assert not any(path.is_dir() for path in lab.iterdir()), f"examples/{name}: a variant of a variant"
            files = config_files(lab)
            assert files, f"examples/{name} holds no config file"
            assert all(path.read_text().lstrip().startswith("#") for path in files), (
                f"examples/{name}: say what the lab is in a comment first"
            )


def test_the_commands_table_names_every_command_and_no_other() -> None:
    from netlab.controller.cli import COMMANDS

    table = set(re.findall(r"^\| `netlab ([a-z]+)", README, re.M))
    assert table == set(COMMANDS), f"README's commands table: {sorted(table)}; the cli: {sorted(COMMANDS)}"
