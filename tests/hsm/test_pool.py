"""Session pool: one PKCS#11 thread per process, typed failures, reconnect, key cache, limits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest
from pkcs11 import Attribute, KeyType
from pkcs11 import exceptions as px

from hsm.config import HsmConfig
from hsm.errors import HsmBusy, HsmError, HsmUnavailable, TemplateError
from hsm.pool import HsmPool, get_key, on_hsm_thread
from hsm.templates import secret_key_template, validate


def _thread(session):
    assert on_hsm_thread()
    return threading.get_ident(), threading.current_thread().name


async def test_every_job_runs_on_one_thread(hsm_pool):
    results = await asyncio.gather(*(hsm_pool.run(_thread) for _ in range(200)))
    assert len({r[0] for r in results}) == 1
    assert results[0][1].startswith("hsm")
    assert results[0][0] != threading.get_ident()
    assert not on_hsm_thread()


async def test_two_pools_share_the_thread(hsm_pool, hsm_config):
    other = HsmPool(hsm_config)
    a, b = await asyncio.gather(hsm_pool.run(_thread), other.run(_thread))
    assert a == b


def test_workers_must_be_one(hsm_config):
    with pytest.raises(ValueError, match="processes"):
        HsmPool(hsm_config, workers=2)
    with pytest.raises(ValueError):
        HsmPool(hsm_config, max_pending=0)


async def test_backpressure_raises_busy(hsm_config):
    pool = HsmPool(hsm_config, max_pending=2)

    def slow(session):
        time.sleep(0.2)
        return 1

    tasks = [asyncio.ensure_future(pool.run(slow)) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(HsmBusy):
        await pool.run(slow)
    assert await asyncio.gather(*tasks) == [1, 1]
    assert pool.pending == 0


async def test_abandoned_jobs_keep_their_slot_until_done(hsm_config):
    pool = HsmPool(hsm_config, max_pending=4)

    def slow(session):
        time.sleep(0.15)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pool.run(slow), 0.01)
    assert pool.pending == 1  # still running on the HSM thread
    await pool.run(lambda s: None)
    assert pool.pending == 0


def test_missing_token_is_unavailable(hsm_config):
    pool = HsmPool(HsmConfig(module=hsm_config.module, conf=hsm_config.conf, token="no-such"))
    with pytest.raises(HsmUnavailable, match="NoSuchToken"):
        pool.run_sync(_thread)


def test_wrong_pin_is_unavailable_in_process(hsm_pool, hsm_config):
    bad = HsmConfig(module=hsm_config.module, conf=hsm_config.conf, token=hsm_config.token, pin="0")
    with pytest.raises(HsmUnavailable) as err:
        HsmPool(bad).run_sync(_thread)
    assert "0" not in str(err.value).replace(hsm_config.token, "")


def test_wrong_pin_fails_login_in_a_fresh_process(hsm_config, tmp_path):
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("00000000\n")
    wrong.chmod(0o600)
    out = subprocess.run(
        [sys.executable, "-m", "payswitch.ceremony", "list", "--party", "switch"],
        env={**os.environ, "SOFTHSM2_CONF": hsm_config.conf},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr  # the right PIN, from the party's file
    code = (
        "import sys; from hsm.config import HsmConfig; from hsm.pool import HsmPool, _ping\n"
        f"HsmPool(HsmConfig.for_party('switch', pin_file={str(wrong)!r})).run_sync(_ping)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "SOFTHSM2_CONF": hsm_config.conf},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "PinIncorrect" in out.stderr and "00000000" not in out.stderr + out.stdout


def test_session_errors_reconnect_and_other_errors_pass_through(hsm_pool, hsm_keys):
    def broken(session):
        raise px.GeneralError()

    def refused(session):
        raise px.MechanismInvalid()

    def app_error(session):
        raise KeyError("not an HSM problem")

    before = hsm_pool.run_sync(lambda s: get_key(s, "switch/token/v1"))
    with pytest.raises(HsmUnavailable):
        hsm_pool.run_sync(broken)
    with pytest.raises(HsmError) as err:
        hsm_pool.run_sync(refused)
    assert not isinstance(err.value, HsmUnavailable)
    with pytest.raises(KeyError):
        hsm_pool.run_sync(app_error)
    # reconnected: a fresh session and a fresh key handle, still working
    after = hsm_pool.run_sync(lambda s: get_key(s, "switch/token/v1"))
    assert after is not before
    assert hsm_pool.run_sync(lambda s: get_key(s, "switch/token/v1")) is after


def test_key_cache_hits_within_session(hsm_pool, hsm_keys):
    def job(session):
        return get_key(session, "switch/bdk/v1") is get_key(session, "switch/bdk/v1")

    assert hsm_pool.run_sync(job)


def test_templates_are_validated_before_the_c_layer():
    with pytest.raises(TemplateError):
        validate({Attribute.LABEL: b"bytes-not-str"})
    with pytest.raises(TemplateError):
        validate({Attribute.DERIVE_TEMPLATE: {}})
    with pytest.raises(TemplateError):
        validate({Attribute.VALUE_LEN: True})
    with pytest.raises(TemplateError):
        validate({Attribute.SENSITIVE: 1})
    with pytest.raises(TemplateError):
        validate({"label": "x"})  # type: ignore[dict-item]
    with pytest.raises(TemplateError):
        secret_key_template(token=True, capabilities={Attribute.LABEL})
    with pytest.raises(TemplateError):
        secret_key_template(token=True, capabilities=set(), extra={Attribute.SENSITIVE: False})
    tpl = secret_key_template(label="a/b/v1", token=True, capabilities={Attribute.SIGN})
    assert tpl[Attribute.SENSITIVE] is True and tpl[Attribute.EXTRACTABLE] is False
    assert tpl[Attribute.SIGN] is True and tpl[Attribute.DERIVE] is False
    assert validate({Attribute.KEY_TYPE: KeyType.AES})[Attribute.KEY_TYPE] == KeyType.AES


def test_config_repr_hides_pin():
    cfg = HsmConfig(pin="super-secret-pin")
    assert "super-secret-pin" not in repr(cfg)
    assert "PAYSWITCH_HSM_PIN" not in os.environ  # the PIN is read from a file, never the env
