"""Every console script in pyproject.toml names an importable main() that answers --help."""
import importlib
import os
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    SCRIPTS = tomllib.load(f)["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_answers_help(name, capsys):
    module, func = SCRIPTS[name].split(":")
    with pytest.raises(SystemExit) as exit_:
        getattr(importlib.import_module(module), func)(["--help"])
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out
