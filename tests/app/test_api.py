"""The running app driven as scripts drive it: ``gradio_client`` against ``soundstage app`` with the bundled model,
plus what the server serves (only its own folder) and how it reports a refused value."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf
from bench_app_load import AppServer
from gradio_client import Client
from gradio_client.exceptions import AppError

from soundstage.foa import great_circle_deg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_server: AppServer, tmp_path_factory: pytest.TempPathFactory) -> Client:
    return Client(app_server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def test_generate_returns_an_ambix_file_and_previews(client: Client, app_server: AppServer) -> None:
    ambix, binaural, stereo, info = client.predict("a car honks its horn", azimuth_deg=90, elevation_deg=10,
                                                   seconds=2, steps=10, seed=5, api_name="/generate")
    assert Path(ambix).name == "a_car_honks_its_horn_seed5.wav"
    assert (sf.info(ambix).channels, sf.info(ambix).samplerate, sf.info(ambix).frames) == (4, 24000, 48000)
    assert sf.info(binaural).channels == sf.info(stereo).channels == 2
    assert info["seed"] == 5 and info["request"]["azimuth_deg"] == 90 and info["request"]["steps"] == 10
    assert float(great_circle_deg(*info["requested"]["requested"], *info["measured"]["measured"])) < 5
    assert set(info["elsa"]) == {"azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s"}
    served = list((app_server.workspace / "gradio").rglob("a_car_honks_its_horn_seed5*.wav"))
    assert len(served) == 3  # the copies gradio serves are in the app's one folder


def test_a_refused_value_is_a_message(client: Client) -> None:
    with pytest.raises(AppError, match="the prompt is empty") as caught:
        client.predict("   ", api_name="/generate")
    assert "Traceback" not in str(caught.value)
    with pytest.raises(AppError, match="greater than maximum value 90"):
        client.predict("a dog barks", elevation_deg=120, api_name="/generate")


def test_only_the_app_folder_is_served(app_server: AppServer) -> None:
    for path in ("/etc/passwd", str(Path(__file__).resolve())):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{app_server.url}gradio_api/file={path}", timeout=30)  # our own loopback server
        assert refused.value.code == 403
    with urllib.request.urlopen(app_server.url, timeout=30) as page:
        assert page.status == 200 and b"Soundstage" in page.read()
