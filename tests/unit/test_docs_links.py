"""The README, the architecture document and docs/ point only inside the repository: every
relative link resolves, no path climbs out of the clone (``../shared/...``), and every
backquoted path under one of the repository's own folders exists (a clone has it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "ARCHITECTURE.md", *sorted((REPO / "docs").glob("**/*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")
# Made by the commands themselves, not kept in the repository.
GENERATED = (".run/", ".softhsm/", ".tools/", ".venv/", ".cassandra/", "benchmarks/results/")


def _tracked_top_folders() -> set[str]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return {n.split("/", 1)[0] for n in names if "/" in n}


TOP = _tracked_top_folders()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_and_paths_stay_inside_the_repository(doc):
    text = doc.read_text()
    missing = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (doc.parent / target.split("#")[0]).resolve().exists():
            missing.append(target)
    for token in CODE.findall(text):
        path = token.split("::")[0].rstrip(".,:;")  # a test id names its file
        if path.startswith("../") or "/../" in path:
            missing.append(path)
            continue
        head = path.split("/", 1)[0]
        if "/" not in path or head not in TOP or path.startswith(GENERATED):
            continue
        if any(c in path for c in "<>*{}|…"):
            continue
        if not (REPO / path).exists():
            missing.append(path)
    assert not missing, f"{doc.name} points at what a clone does not have: {missing}"


def test_no_document_names_the_old_outside_notes():
    for doc in DOCS:
        text = doc.read_text()
        assert "shared/notes" not in text and "DESIGN.md" not in text, doc.name
