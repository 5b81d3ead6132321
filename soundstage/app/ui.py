"""The gradio app: :func:`build_app` lays out the controls and outputs over a pipeline, :func:`serve` runs it.

The module has no ``from __future__ import annotations``: gradio reads the handlers' type hints at run time to
inject ``gr.SelectData`` and ``gr.Progress``. Everything a request changes lives in the browser session's
``gr.State`` (the history, the clip on show); the pipeline, workspace and limits are closed over by the handlers, so
two apps in one process share nothing. The ``generate`` API endpoint takes the issue's named parameters and returns
the AmbiX file, the two previews and a JSON description (seed, directions, ELSA's reading); the browser's Generate
button adds what only a person uses (a moving source, init audio, variations, the history).
"""

import ipaddress
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from soundstage.common.errors import SoundstageError, UsageError
from soundstage.sample import SoundstagePipeline

from .handlers import (
    AppLimits,
    Clip,
    Workspace,
    describe,
    details,
    generate_clips,
    history_rows,
    picker_image,
    rotate_clip,
)
from .render import pixel_to_direction

ROOM_DEFAULTS = {"distance_m": 1.5, "floor_area_m2": 60.0, "t30_s": 0.6}  # a medium room, mid-range values
EXAMPLES = [  # prompt, mode, azimuth, elevation, moving, end azimuth, end elevation, distance, floor area, T30
    ["a car honks its horn", "parametric", 90, 0, False, -90, 0, 3.0, 150, 1.2],
    ["a helicopter's rotor blades thump", "parametric", 90, 20, True, -90, 20, 3.5, 250, 0.5],
    ["a circular saw cuts through wood", "parametric", -45, 0, False, -90, 0, 1.0, 30, 0.3],
    ["ocean waves crash on the shore", "parametric", 180, -10, False, -90, 0, 4.0, 270, 0.2],
    ["a steam locomotive whistles far to the left of a large, highly reverberant room", "descriptive",
     0, 0, False, -90, 0, 1.5, 60, 0.6],
]
CSS = "#picker img { cursor: crosshair; }"


@dataclass
class _Outputs:
    """The components that showing a clip fills, in the order of ``show``'s values (the clip state last)."""

    clip: list[Any] = field(default_factory=list)  # status, binaural, stereo, download, map, spectrogram, details
    history: list[Any] = field(default_factory=list)  # history state, table, dropdown, all files
    rotation: list[Any] = field(default_factory=list)  # yaw, pitch, roll sliders


@contextmanager
def _user_errors() -> Iterator[None]:
    """A refused value becomes a message in the UI (gr.Error), never a traceback."""
    try:
        yield
    except SoundstageError as exc:
        raise gr.Error(str(exc), print_exception=False) from None


def _history_choices(history: list[Clip]) -> list[tuple[str, int]]:
    return [(f"{n}: {clip.prompt[:40]} (seed {clip.seed})", n - 1)
            for n, clip in reversed(list(enumerate(history, start=1)))]


def build_app(pipe: SoundstagePipeline, workspace: Workspace, limits: AppLimits | None = None) -> gr.Blocks:
    """The app's Blocks over ``pipe``, writing into ``workspace``; call ``.launch()`` (or :func:`serve`)."""
    limits = limits or AppLimits()
    defaults = pipe.make_request("defaults", azimuth_deg=0.0)  # the pipeline's seconds, steps and CFG
    max_seconds = pipe.max_seconds
    outputs = _Outputs()

    def show(clip: Clip, history: list[Clip]) -> list[Any]:
        values = [describe(clip), str(clip.binaural), str(clip.stereo), str(clip.ambix), str(clip.direction_map),
                  str(clip.spectrogram), details(clip)]
        history_values = [history, history_rows(history), gr.update(choices=_history_choices(history), value=None),
                          [str(c.ambix) for c in history]]
        return values + history_values + [clip]

    def run_generation(progress: gr.Progress, **options: Any) -> list[Clip]:
        with _user_errors():
            return generate_clips(pipe, workspace, limits, progress=lambda done, text: progress(done, desc=text),
                                  **options)

    def ui_generate(prompt: str, negative_prompt: str, mode: str, azimuth: float, elevation: float, moving: bool,
                    end_azimuth: float, end_elevation: float, distance: float, floor_area: float, t30: float,
                    seconds: float, steps: float, cfg_scale: float, seed: float | None, variations: float,
                    init_audio: str | None, init_strength: float, history: list[Clip] | None,
                    progress: gr.Progress = gr.Progress()) -> list[Any]:  # noqa: B008 -- gradio's injection marker
        clips = run_generation(
            progress, prompt=prompt, mode=mode, azimuth_deg=azimuth, elevation_deg=elevation, distance_m=distance,
            floor_area_m2=floor_area, t30_s=t30, seconds=seconds, steps=steps, cfg_scale=cfg_scale,
            negative_prompt=negative_prompt, seed=seed, end_direction=(end_azimuth, end_elevation) if moving else None,
            init_audio=init_audio, init_strength=init_strength, variations=variations)
        history = ((history or []) + clips)[-limits.max_history:]
        return show(clips[0], history) + [0, 0, 0]

    def api_generate(prompt: str, mode: str, azimuth_deg: float, elevation_deg: float, distance_m: float,
                     floor_area_m2: float, t30_s: float, seconds: float, steps: float, cfg_scale: float,
                     negative_prompt: str, seed: float | None = None,
                     progress: gr.Progress = gr.Progress()) -> tuple[str, str, str, dict[str, Any]]:  # noqa: B008
        """Generate one clip; returns the 4-channel AmbiX WAV, binaural and stereo previews, and a description."""
        clip = run_generation(
            progress, prompt=prompt, mode=mode, azimuth_deg=azimuth_deg, elevation_deg=elevation_deg,
            distance_m=distance_m, floor_area_m2=floor_area_m2, t30_s=t30_s, seconds=seconds, steps=steps,
            cfg_scale=cfg_scale, negative_prompt=negative_prompt, seed=seed)[0]
        return str(clip.ambix), str(clip.binaural), str(clip.stereo), details(clip)

    def ui_rotate(current: Clip | None, history: list[Clip], yaw: float, pitch: float, roll: float) -> list[Any]:
        if current is None:
            raise gr.Error("generate a clip first: rotation turns the last output", print_exception=False)
        with _user_errors():
            rotated = rotate_clip(pipe, workspace, current, yaw, pitch, roll)
        return show(rotated, history)

    def ui_pick_history(index: int | None, history: list[Clip]) -> list[Any]:
        if index is None or not 0 <= index < len(history):
            return [gr.skip()] * (len(outputs.clip) + len(outputs.history) + 1 + 3)
        values = show(history[index], history)
        values[len(outputs.clip) + 2] = gr.skip()  # keep the dropdown's choice on show
        return values + [0, 0, 0]

    def ui_click(moving: bool, target: str, evt: gr.SelectData) -> list[Any]:
        azimuth, elevation = pixel_to_direction(*evt.index)
        if moving and target == "end":
            return [gr.skip(), gr.skip(), azimuth, elevation]
        return [azimuth, elevation, gr.skip(), gr.skip()]

    def ui_picker(azimuth: float, elevation: float, moving: bool, end_azimuth: float, end_elevation: float) -> Any:
        return picker_image((azimuth, elevation), (end_azimuth, end_elevation) if moving else None)

    with gr.Blocks(title="Soundstage", analytics_enabled=False, delete_cache=(900, 3600), fill_width=True) as demo:
        gr.Markdown("# Soundstage: place a sound in space\nDescribe a sound, put it on the map, listen on "
                    "headphones (binaural) and download 4-channel AmbiX (ACN/SN3D). Azimuth +90 = left.")
        history_state = gr.State([])
        current_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=5):
                prompt = gr.Textbox(label="prompt", value=None, placeholder="a dog barks", lines=2, elem_id="prompt")
                negative_prompt = gr.Textbox(label="negative prompt", value="", placeholder="what to avoid")
                mode = gr.Radio(["parametric", "descriptive"], value="parametric", label="mode",
                                info="parametric: the map and sliders place the sound; descriptive: the prompt "
                                     "says where (e.g. 'far to the left of a large hall')")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300):
                        picker = gr.Image(picker_image((0.0, 0.0)), type="numpy", format="png", interactive=False,
                                          label="click to place the sound", elem_id="picker", buttons=[])
                        gr.Markdown("Seen from above, the listener facing up: the centre is overhead, the bold "
                                    "ring ear level, the rim straight down.")
                    with gr.Column(scale=1, min_width=240):
                        azimuth = gr.Slider(-180, 180, value=0, step=1, label="azimuth (deg, +90 = left)",
                                            elem_id="azimuth")
                        elevation = gr.Slider(-90, 90, value=0, step=1, label="elevation (deg, +90 = up)",
                                              elem_id="elevation")
                        moving = gr.Checkbox(False, label="moving source (start -> end over the clip)")
                        end_azimuth = gr.Slider(-180, 180, value=-90, step=1, label="end azimuth (deg)")
                        end_elevation = gr.Slider(-90, 90, value=0, step=1, label="end elevation (deg)")
                        target = gr.Radio(["start", "end"], value="start", label="a click on the map sets")
                with gr.Accordion("room", open=True):
                    distance = gr.Slider(0.5, 4.0, value=ROOM_DEFAULTS["distance_m"], step=0.1, label="distance (m)")
                    floor_area = gr.Slider(13, 280, value=ROOM_DEFAULTS["floor_area_m2"], step=1,
                                           label="room size: floor area (m²)")
                    t30 = gr.Slider(0.1, 2.7, value=ROOM_DEFAULTS["t30_s"], step=0.05, label="reverberation: T30 (s)")
                with gr.Accordion("sampling", open=False):
                    with gr.Row():
                        seconds = gr.Slider(1, max_seconds, value=defaults.seconds, step=0.5, label="duration (s)")
                        steps = gr.Slider(1, limits.max_steps, value=defaults.steps, step=1, label="steps")
                        cfg_scale = gr.Slider(0, 10, value=defaults.cfg_scale, step=0.5, label="CFG scale")
                    with gr.Row():
                        seed = gr.Number(None, precision=0, minimum=-1, label="seed (empty or -1 = random)")
                        variations = gr.Slider(1, limits.max_variations, value=1, step=1, label="variations")
                with gr.Accordion("init audio (variations of a sound)", open=False):
                    init_audio = gr.Audio(type="filepath", sources=["upload"],
                                          label=f"FOA (4 channels) or any other file, mixed to mono and placed; at "
                                                f"most {limits.max_init_seconds:g} s, {limits.max_upload_mb} MB")
                    init_strength = gr.Slider(0.05, 1.0, value=0.7, step=0.05,
                                              label="init strength (1 = ignore the init audio)")
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=6):
                status = gr.Markdown("Generate a clip to hear it here.", elem_id="status")
                with gr.Row():
                    binaural = gr.Audio(label="binaural preview (headphones)", type="filepath", interactive=False,
                                        elem_id="binaural")
                    stereo = gr.Audio(label="stereo preview (loudspeakers)", type="filepath", interactive=False,
                                      elem_id="stereo")
                download = gr.File(label="4-channel AmbiX WAV (ACN/SN3D, 32-bit float)", interactive=False,
                                   elem_id="download", height=90)
                direction_map = gr.Image(label="direction map of the output", type="filepath", interactive=False,
                                         format="png", elem_id="direction-map")
                spectrogram = gr.Image(label="W spectrogram", type="filepath", interactive=False, format="png")
                with gr.Accordion("rotate the output exactly (no regeneration)", open=True):
                    yaw = gr.Slider(-180, 180, value=0, step=1, label="yaw (deg, + turns left)", elem_id="yaw")
                    pitch = gr.Slider(-90, 90, value=0, step=1, label="pitch (deg, + raises the front)")
                    roll = gr.Slider(-180, 180, value=0, step=1, label="roll (deg, + raises the left)")
                with gr.Accordion("details (JSON)", open=False):
                    info = gr.JSON(label="request, seed, directions, ELSA's reading")
                with gr.Accordion("history of this session", open=True):
                    history_table = gr.Dataframe(headers=["#", "prompt", "seed", "mode", "requested", "measured"],
                                                 interactive=False, wrap=True)
                    history_pick = gr.Dropdown([], label="show an earlier clip", value=None)
                    history_files = gr.File(label="all AmbiX files of this session", file_count="multiple",
                                            interactive=False, height=150)
        gr.Examples(EXAMPLES, [prompt, mode, azimuth, elevation, moving, end_azimuth, end_elevation, distance,
                               floor_area, t30], label="examples (click to fill in)")

        outputs.clip = [status, binaural, stereo, download, direction_map, spectrogram, info]
        outputs.history = [history_state, history_table, history_pick, history_files]
        outputs.rotation = [yaw, pitch, roll]
        shown = [*outputs.clip, *outputs.history, current_state]
        generate.click(ui_generate, [prompt, negative_prompt, mode, azimuth, elevation, moving, end_azimuth,
                                     end_elevation, distance, floor_area, t30, seconds, steps, cfg_scale, seed,
                                     variations, init_audio, init_strength, history_state],
                       [*shown, *outputs.rotation], concurrency_id="generate", concurrency_limit=limits.concurrency,
                       api_visibility="private")
        api_trigger = gr.Button(visible=False)
        api_trigger.click(api_generate, [prompt, mode, azimuth, elevation, distance, floor_area, t30, seconds, steps,
                                         cfg_scale, negative_prompt, seed], [download, binaural, stereo, info],
                          api_name="generate", concurrency_id="generate", concurrency_limit=limits.concurrency)
        # A person's change only (dragged or typed; not the reset after a generation), and while one rotation runs
        # only the latest change waits: a drag costs two renders, not one per pixel.
        gr.on([slider.input for slider in outputs.rotation], ui_rotate,
              [current_state, history_state, yaw, pitch, roll], shown, trigger_mode="always_last",
              concurrency_id="rotate", concurrency_limit=limits.concurrency, api_visibility="private")
        history_pick.input(ui_pick_history, [history_pick, history_state], [*shown, *outputs.rotation],
                           api_visibility="private", queue=False)
        picker.select(ui_click, [moving, target], [azimuth, elevation, end_azimuth, end_elevation],
                      api_visibility="private", queue=False)
        gr.on([azimuth.change, elevation.change, moving.change, end_azimuth.change, end_elevation.change],
              ui_picker, [azimuth, elevation, moving, end_azimuth, end_elevation], picker, api_visibility="private",
              queue=False, show_progress="hidden")
    demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.max_queue)
    return demo


def is_loopback(host: str) -> bool:
    """Whether ``host`` only serves this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(model: str = "small", host: str = "127.0.0.1", port: int = 7860, limits: AppLimits | None = None) -> None:
    """Load ``model``, serve the app on ``host:port`` until Ctrl-C or SIGTERM, then remove its temporary folder.

    Prints the URL and the folder. A host other than loopback is served only because it was asked for, with a
    warning; there is never a public share link. Raises UsageError for a port in use or a bad host.
    """
    limits = limits or AppLimits()
    if not 1 <= limits.concurrency <= (os.cpu_count() or 1):
        raise UsageError(f"concurrency must be from 1 to the number of CPU cores ({os.cpu_count()}), got "
                         f"{limits.concurrency}")
    pipe = SoundstagePipeline.from_pretrained(model)
    workspace = Workspace(limits.max_stored_clips)
    # gradio reads these when it stores an upload or an output and when it serves a file: everything it writes and
    # serves stays in the workspace (its default would be the system temp folder, shared and never cleaned).
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.gradio)
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(workspace.gradio / "examples")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    demo = None
    try:
        demo = build_app(pipe, workspace, limits)
        if not is_loopback(host):
            print(f"soundstage: warning: serving on {host}:{port}, so anyone who can reach this machine can use the "
                  "app (there is no password); the default 127.0.0.1 keeps it on this machine", file=sys.stderr)
        theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],  # no web fonts: works offline
                                  font_mono=["ui-monospace", "monospace"])
        try:
            demo.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=True, quiet=True,
                        show_error=False, max_file_size=f"{limits.max_upload_mb}mb", theme=theme, css=CSS,
                        footer_links=["api", "settings"], run_history=False)
        except OSError as exc:
            raise UsageError(f"cannot serve on {host}:{port}: {exc}") from None
        print(f"soundstage app: {demo.local_url} (model {model}; outputs in {workspace.root}, removed on exit; "
              "Ctrl-C to stop)", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if demo is not None:
            demo.close()
        workspace.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
