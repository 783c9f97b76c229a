"""`soaktui detect FILE|-`: what the tool-call detector sees in a raw model answer, run as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def detect(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soaktui", "detect", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_saved_response_file_shows_its_calls(tmp_path: Path):
    response = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call>',
                }
            }
        ]
    }
    f = tmp_path / "answer.json"
    f.write_text(json.dumps(response, ensure_ascii=False), encoding="utf-8")
    r = detect(str(f))
    assert r.returncode == 0, r.stderr
    assert "input: OpenAI response" in r.stdout
    assert "format: hermes (trust 2)" in r.stdout
    assert 'call 1: get_weather {"city": "Zürich"}' in r.stdout


def test_stdin_json_output_and_the_reasons_for_no_call():
    r = detect("-", "--json", stdin='@@invoke get_weather(city="Oslo")@@')
    out = json.loads(r.stdout)
    assert (out["format"], out["calls"]) == ("unparsed", []) and "get_weather(city=" in out["excerpt"]
    r = detect("-", stdin="I would use get_weather for that.")
    assert "format: prose_mention" in r.stdout and "named in prose only" in r.stdout
    r = detect("-", "--tools", "lookup_order", stdin="I would use get_weather for that.")
    assert "format: none" in r.stdout  # get_weather is not offered here
    r = detect("-", stdin='<think>get_weather(city="Oslo")</think>It is sunny.')
    assert "reasoning blocks" in r.stdout and "format: none" in r.stdout


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path):
    r = detect(str(tmp_path / "nope.txt"))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "cannot read" in r.stderr
