"""benchmarks/compare_generate_evals.py: eval_generate results compare on the first N prompts they share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def script() -> Iterator[object]:
    with benchmark_module("compare_generate_evals") as module:
        yield module


def _clip(i: int, lock: float, correct: bool, t30: float = 1.0) -> dict:
    return {"path": f"audio/clip{i}.flac", "class": "dog", "t30_s": t30, "lock_error_deg": lock,
            "no_lock_error_deg": 10 * lock, "real_error_deg": 5.0, "real_diffuseness": 0.6, "lock_diffuseness": 0.3,
            "no_lock_diffuseness": 0.4, "descriptive": {"correct": True},
            "descriptive_no_lock": {"correct": correct},
            "semantic": {"generated_class": "dog" if correct else "cat", "real_class": "dog"},
            "timings": {"lock": {"total": 1.0 + lock}}}


def _result(path: Path, clips: list[dict], moving: float = 2.0) -> Path:
    path.write_text(json.dumps({"model": path.stem, "data": "datasets/x", "split": "test", "clips": clips,
                                "moving": {"median_deg": moving}}))
    return path


def test_models_compare_on_the_first_prompts_they_share(script, tmp_path: Path) -> None:
    full = _result(tmp_path / "full.json", [_clip(0, 1.0, True), _clip(1, 3.0, False, t30=0.3), _clip(2, 2.0, True),
                                            _clip(3, 100.0, False)])
    short = _result(tmp_path / "short.json", [_clip(0, 4.0, False), _clip(1, 6.0, False), _clip(2, 5.0, True)], 9.0)
    comparison = script.compare({"full": full, "short": short}, None)
    assert comparison["first_prompts"] == 3  # the 4th clip of the full run (error 100 deg) is left out
    first = comparison["models"]["full"]
    assert first["lock_deg"] == 2.0 and first["no_lock_deg"] == 20.0 and first["lock_dry_deg"] == 3.0
    assert first["descriptive_no_lock"] == pytest.approx(2 / 3) and first["class_generated"] == pytest.approx(2 / 3)
    assert first["class_real"] == 1.0 and first["seconds_per_generation_lock"] == 3.0
    other = comparison["models"]["short"]
    assert other["lock_deg"] == 5.0 and other["descriptive_no_lock"] == pytest.approx(1 / 3)
    assert other["moving_deg"] == 9.0 and other["diffuseness"] == {"real": 0.6, "lock": 0.3, "no_lock": 0.4}


def test_each_model_is_paired_with_the_first_prompt_by_prompt(script, tmp_path: Path) -> None:
    base = [_clip(i, 1.0 + i, True) for i in range(8)]
    worse = [_clip(i, 2.0 + i, i >= 5) for i in range(8)]  # every error 1 deg larger; 5 descriptive prompts lost
    first = _result(tmp_path / "base.json", base)
    second = _result(tmp_path / "worse.json", worse)
    for path, medians in ((first, (1.0, 2.0, 3.0)), (second, (0.5, 4.0, 3.0))):  # moving: the second lower on 1 of 3
        data = json.loads(path.read_text())
        data["moving_clips"] = [{"prompt": f"p{j}", "median_deg": m} for j, m in enumerate(medians)]
        path.write_text(json.dumps(data))
    pair = script.compare({"base": first, "worse": second}, None)["paired"]["worse vs base"]
    assert pair["lock_deg"] == {"difference": 1.0, "ci95": [1.0, 1.0], "prompts": 8}  # a constant shift: no spread
    assert pair["no_lock_deg"]["difference"] == 10.0
    described = pair["descriptive_no_lock"]
    assert (described["only_this_right"], described["only_first_right"]) == (0, 5)
    assert described["sign_test_p"] == pytest.approx(2 / 2**5)  # two-sided: 0 of 5 discordant
    assert pair["moving_prompts"] == {"this_lower": 1, "first_lower": 1, "prompts": 3}  # the third is a tie
    same = script.compare({"a": first, "b": first}, None)["paired"]["b vs a"]
    assert same["lock_deg"]["ci95"] == [0.0, 0.0] and same["descriptive_no_lock"]["sign_test_p"] is None


def test_results_on_other_prompts_or_too_few_are_refused(script, tmp_path: Path) -> None:
    one = _result(tmp_path / "one.json", [_clip(0, 1.0, True), _clip(1, 1.0, True)])
    other = [_clip(0, 1.0, True), _clip(1, 1.0, True)]
    other[1]["path"] = "audio/elsewhere.flac"
    two = _result(tmp_path / "two.json", other)
    assert script.compare({"a": one, "b": two}, 1)["first_prompts"] == 1  # the first prompt is shared
    with pytest.raises(ValueError, match="first 2 prompts differ"):
        script.compare({"a": one, "b": two}, 2)
    with pytest.raises(ValueError, match="holds 2 prompts"):
        script.compare({"a": one, "b": one}, 3)


def test_the_command_line_writes_json_and_rejects_unnamed_results(script, tmp_path: Path, capsys) -> None:
    one = _result(tmp_path / "one.json", [_clip(0, 1.0, True)])
    out = tmp_path / "cmp.json"
    script.main([f"a={one}", f"b={one}", "--out", str(out)])
    assert json.loads(out.read_text())["models"]["b"]["lock_deg"] == 1.0
    assert "a: lock 1.00 deg" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main([str(one), f"b={one}"])
