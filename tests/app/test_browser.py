"""End to end in a real headless browser: open the app, type a prompt, pick a direction on the top view, generate,
check the players' sources and the downloaded 4-channel AmbiX WAV; then rotate it by typing a yaw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench_app_load import AppServer

from soundstage.foa import broadband_doa, rotate_foa

from .browser import generate_in_browser, missing_browser, rotate_in_browser, screenshot, start_browser

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing_browser() is not None,
                                                   reason=f"browser test skipped: {missing_browser()}")]


def test_generate_from_the_page(app_server: AppServer, tmp_path: Path) -> None:
    driver = start_browser()
    try:
        run = generate_in_browser(driver, app_server.url, "a car honks its horn", (90.0, 0.0))
        screenshot(driver, tmp_path / "app.png")
        turned = rotate_in_browser(driver, 90.0)
    finally:
        driver.quit()
    assert (run.azimuth, run.elevation) == ("90", "0")  # the click on the left of the top view, at ear level
    assert "seed" in run.status and "requested az +90.0, el +0.0" in run.status
    for player in ("binaural", "stereo"):
        with run.audio(player) as audio:
            assert (audio.channels, audio.samplerate) == (2, 24000) and audio.frames > 0
    with run.audio("download") as audio:
        assert (audio.channels, audio.samplerate, audio.subtype) == (4, 24000, "FLOAT")
        foa = audio.read(dtype="float32").T
    azimuth, elevation = broadband_doa(foa)
    assert abs(float(azimuth) - 90) < 5 and abs(float(elevation)) < 5  # the downloaded file is on the left
    assert (tmp_path / "app.png").stat().st_size > 10_000
    # Yaw +90 turns the left to the back: the players and the download now hold the rotated clip.
    assert "requested az -180.0, el +0.0" in turned.status
    with turned.audio("download") as audio:
        np.testing.assert_allclose(audio.read(dtype="float32").T, rotate_foa(foa, 90.0), atol=1e-6)
    assert turned.files["binaural"] != run.files["binaural"]
