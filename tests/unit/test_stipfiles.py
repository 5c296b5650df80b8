"""The switch's hold on the issuers' stand-in files (``switch.cardsec.stipfiles``), with a
fake protector standing in for the HSM's MAC check: a file older than ``max_age_s`` is not
used (stand-in then declines 91 for that issuer), a refresh never goes back to an older
publication, a file that does not verify keeps the last good one (which only ages), and a
missing file or directory is no error."""

from __future__ import annotations

from pathlib import Path

import pytest

from payswitch import stipfile
from payswitch.stipfile import StipCard, StipFile
from payswitch.world.topology import StandInConfig
from switch.cardsec.stipfiles import StipFiles
from switch.core import metrics


class Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


class Protector:
    """Accepts a file whose MAC line is ``ok`` (the HSM check is tests/hsm's)."""

    async def standin_files(self, raws):
        out = {}
        for issuer, raw in raws.items():
            body, mac = stipfile.split(raw)
            if mac == b"ok":
                out[issuer] = stipfile.parse(body, issuer)
        return out


def publish(files_dir: Path, at: float, mac: bytes = b"ok", status: str = "active") -> None:
    body = StipFile("bank-a", at, {"d" * 64: StipCard(status, b"")}).body()
    stipfile.write(files_dir, body, mac, "bank-a")


def holder(tmp_path: Path, clock: Clock) -> StipFiles:
    cfg = StandInConfig(enabled=True, files_dir=str(tmp_path), max_age_s=60)
    return StipFiles(cfg, ("bank-a", "bank-b"), Protector(), clock)  # type: ignore[arg-type]


async def test_a_fresh_file_is_used_and_a_stale_one_is_not(tmp_path):
    metrics.reset()
    clock = Clock()
    files = holder(tmp_path, clock)
    publish(tmp_path, 990.0)
    assert await files.refresh() == 1  # bank-b has published nothing: no error
    assert set(files.fresh()) == {"bank-a"}
    published = metrics.get().standin_file.labels("bank-a")._value.get()
    assert published == 990.0  # operators see the file's age
    clock.t = 990.0 + 60.5
    assert files.fresh() == {}


async def test_a_refresh_never_goes_back_to_an_older_publication(tmp_path):
    clock = Clock()
    files = holder(tmp_path, clock)
    publish(tmp_path, 995.0)
    await files.refresh()
    publish(tmp_path, 980.0, status="blocked")  # an old file put back
    await files.refresh()
    assert files.fresh()["bank-a"].published_at == 995.0


async def test_a_file_that_does_not_verify_keeps_the_last_good_one_ageing(tmp_path):
    clock = Clock()
    files = holder(tmp_path, clock)
    publish(tmp_path, 995.0)
    await files.refresh()
    publish(tmp_path, 999.0, mac=b"\xff")
    assert await files.refresh() == 0
    assert files.fresh()["bank-a"].published_at == 995.0
    clock.t = 995.0 + 61
    assert files.fresh() == {}


async def test_no_directory_is_no_file(tmp_path):
    files = holder(tmp_path / "missing", Clock())
    assert await files.refresh() == 0 and files.fresh() == {}


def test_a_body_of_the_wrong_shape_is_a_file_error_not_a_crash():
    body = StipFile("bank-a", 1.0, {"d" * 64: StipCard("active")}).body()
    for bad in (
        body.replace(b'"atc":{}', b'"atc":[]'),
        body.replace(b'"status":"active"', b'"status":"gone"'),
        body.replace(b'"atc_window":32', b'"atc_window":0'),
        b"[]",
    ):
        with pytest.raises(stipfile.StipFileError):
            stipfile.parse(bad, "bank-a")
    assert stipfile.parse(body, "bank-a").cards["d" * 64].status == "active"
    with pytest.raises(stipfile.StipFileError):
        stipfile.parse(body, "bank-b")  # another issuer's file under this name
