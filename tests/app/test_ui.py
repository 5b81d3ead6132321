"""The app's layout built in-process on the tiny pipeline (no server): the API endpoint's names and defaults, and
the events' functions called directly (generate, rotate, history, the map click), and the host check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from soundstage.app import AppLimits, Workspace, build_app
from soundstage.app.render import PICKER_SIZE, direction_to_pixel
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


def _handlers(demo: gr.Blocks) -> dict[str, Callable[..., Any]]:
    return {f.fn.__name__: f.fn for f in demo.fns.values() if f.fn is not None}


def test_ui_events_generate_rotate_and_show_history(tiny_pipe: SoundstagePipeline, workspace: Workspace) -> None:
    handlers = _handlers(build_app(tiny_pipe, workspace, AppLimits(max_history=3)))
    inputs = {"prompt": "a bee", "negative_prompt": "", "mode": "parametric", "azimuth": 90.0, "elevation": 0.0,
              "moving": True, "end_azimuth": -90.0, "end_elevation": 0.0, "distance": 1.5, "floor_area": 60.0,
              "t30": 0.6, "seconds": 0.5, "steps": 2, "cfg_scale": 4.0, "seed": 3, "variations": 2,
              "init_audio": None, "init_strength": 0.7, "history": []}
    values = handlers["ui_generate"](**inputs)
    status, history, choices, files, current, rotation = values[0], values[7], values[9], values[10], values[11], \
        values[12:]
    assert "seed 3" in status and "start: requested" in status and rotation == [0, 0, 0]
    assert [c.seed for c in history] == [3, 4] and current is history[0]
    assert [value for _, value in choices["choices"]] == [1, 0] and files == [str(c.ambix) for c in history]
    history = handlers["ui_generate"](**{**inputs, "moving": False, "history": history})[7]
    assert [c.seed for c in history] == [4, 3, 4]  # the last max_history clips
    turned = handlers["ui_rotate"](history[1], history, 90.0, 0.0, 0.0)
    assert "rotated by yaw/pitch/roll 90/0/0" in turned[0] and turned[11].rotation == (90.0, 0.0, 0.0)
    shown = handlers["ui_pick_history"](0, history)
    assert shown[11] is history[0] and shown[12:] == [0.0, 0.0, 0.0]
    with pytest.raises(gr.Error, match="generate a clip first"):
        handlers["ui_rotate"](None, [], 10.0, 0.0, 0.0)
    with pytest.raises(gr.Error, match="the prompt is empty"):
        handlers["ui_generate"](**{**inputs, "prompt": ""})


def test_ui_map_click_sets_the_start_or_the_end(tiny_pipe: SoundstagePipeline, workspace: Workspace) -> None:
    handlers = _handlers(build_app(tiny_pipe, workspace))
    left = gr.SelectData(None, {"index": [round(x) for x in direction_to_pixel(90.0, 0.0)], "value": None})
    assert handlers["ui_click"](False, "end", left)[:2] == [90.0, 0.0]
    assert handlers["ui_click"](True, "end", left)[2:] == [90.0, 0.0]
    assert handlers["ui_picker"](90.0, 0.0, True, -90.0, 0.0).shape == (PICKER_SIZE, PICKER_SIZE, 3)


def test_a_missing_model_is_refused_before_serving(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["app", "--model", str(tmp_path / "nowhere")]) == 2
    assert "no such model folder" in capsys.readouterr().err
