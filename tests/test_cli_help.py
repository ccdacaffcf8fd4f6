"""Every `aetbench` command's --help prints its usage and exits 0 (argparse formats help strings with %)."""
from __future__ import annotations

import pytest

from aetbench.cli import build_parser

COMMANDS = [[]] + [[c] for c in ("run", "list", "score", "structure", "limits", "compare", "reproduce", "validate",
                                 "bench")]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "aetbench")
def test_help_prints_usage(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(cmd + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: aetbench") and len(out.splitlines()) > 3
