"""The app's layout built in-process on the tiny pipeline (no server): the API endpoint's names and defaults, and
the host check."""

from __future__ import annotations

import pytest

from soundstage.app import Workspace, build_app
from soundstage.app.ui import is_loopback
from soundstage.cli import main
from soundstage.sample import SoundstagePipeline

API_PARAMETERS = ["prompt", "mode", "azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s", "seconds",
                  "steps", "cfg_scale", "negative_prompt", "seed"]


def test_generate_endpoint_has_the_named_parameters(tiny_pipe: SoundstagePipeline, workspace: Workspace) -> None:
    endpoints = build_app(tiny_pipe, workspace).get_api_info()["named_endpoints"]
    assert list(endpoints) == ["/generate"]  # the UI's own events are private
    parameters = endpoints["/generate"]["parameters"]
    assert [p["parameter_name"] for p in parameters] == API_PARAMETERS
    defaults = {p["parameter_name"]: p["parameter_default"] for p in parameters if p["parameter_has_default"]}
    assert set(defaults) == set(API_PARAMETERS) - {"prompt"}
    request = tiny_pipe.make_request("x", azimuth_deg=0.0)
    assert (defaults["mode"], defaults["azimuth_deg"], defaults["seed"]) == ("parametric", 0, None)
    assert (defaults["seconds"], defaults["steps"], defaults["cfg_scale"]) == (request.seconds, request.steps,
                                                                                request.cfg_scale)
    returns = [r["component"] for r in endpoints["/generate"]["returns"]]
    assert returns == ["File", "Audio", "Audio", "Json"]


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.5", False),
                                                ("example.org", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_more_generations_than_cores_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["app", "--concurrency", "1000"]) == 2
    assert "concurrency must be from 1 to the number of CPU cores" in capsys.readouterr().err
