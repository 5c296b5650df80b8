"""Bad input to the day generator is refused with the argument named, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.day import generate

TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "default.toml"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"--count": "0"}, "--count"),
        ({"--count": "50"}, "--count"),  # too few for three of each injected kind
        ({"--page": "-1"}, "--page"),
        ({"--per-kind": "-2"}, "--per-kind"),
        ({"--store": "mysql://x"}, "--store"),
        ({"--count": "many"}, "--count"),
    ],
)
def test_bad_arguments_are_named_and_nothing_is_written(tmp_path, capsys, change, named):
    args = {
        "--store": f"sqlite:///{tmp_path / 'switch.db'}",
        "--topology": str(TOPOLOGY),
        "--books": str(tmp_path / "books"),
        "--count": "1000",
        **change,
    }
    with pytest.raises(SystemExit) as exit_:
        generate.main([a for kv in args.items() for a in kv])
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_topology_is_named(tmp_path, capsys):
    code = generate.main(
        ["--store", f"sqlite:///{tmp_path / 'switch.db'}", "--topology", str(tmp_path / "no.toml"),
         "--books", str(tmp_path / "books"), "--count", "1000"]
    )  # fmt: skip
    assert code == 2 and "--topology" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
