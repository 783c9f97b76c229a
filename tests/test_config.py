"""Settings layers, validation messages, durations and platform paths."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from soaktui import locations
from soaktui.config import (
    REDACTED,
    ConfigError,
    Settings,
    default_weights,
    example_config_toml,
    key_table,
    known_scenarios,
    load_settings,
)
from soaktui.durations import format_duration, parse_clock, parse_duration
from soaktui.errors import SetupError
from soaktui.scenarios import REGISTRY  # importing it registers the scenarios with config

pytestmark = pytest.mark.unit


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment that keeps the host's config and data out of the test."""
    (tmp_path / "cfg").mkdir()
    return {"SOAKTUI_CONFIG_DIR": str(tmp_path / "cfg"), "SOAKTUI_DATA_DIR": str(tmp_path / "data")}


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, env: dict[str, str], toml: str = "", **kw) -> str:
    path = write(tmp_path, toml) if toml else None
    with pytest.raises(ConfigError) as info:
        load_settings(path, env, kw.pop("overrides", {}))
    assert isinstance(info.value, SetupError)
    return str(info.value)


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4", 4 * 3600),
        ("2.5", 2.5 * 3600),
        ("0.5", 1800),
        (".5", 1800),
        (4, 4 * 3600),
        (0.25, 900),
        ("90s", 90),
        ("30m", 1800),
        ("4h", 4 * 3600),
        ("1d", 86400),
        ("1h30m", 5400),
        (" 1H 30m 5s ", 5405),
    ],
)
def test_parse_duration_bare_number_is_hours(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["0", "-1", "0s", "nan", "inf", "1e3", "abc", "", "4x", "30m1h", "1h1h", True, None]
)
def test_parse_duration_rejects_with_what_is_allowed(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert message.startswith(f"invalid duration {text!r}: ")
    assert any(hint in message for hint in ("90s, 30m, 4h", "greater than 0", "1h30m"))


def test_parse_duration_seconds_unit():
    assert parse_duration("30", default_unit="s") == 30
    assert parse_duration("2m", default_unit="s") == 120


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3723, "1h 02m 03s"),
        (245, "4m 05s"),
        (42, "42s"),
        (2.5, "2.5s"),
        (0, "0s"),
        (50 * 3600, "50h 00m 00s"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (7500, "2h05m"),
        (3599.7, "1h00m"),  # rounding carries into the next unit, never "60m00s"
        (250, "4m10s"),
        (59.96, "1m00s"),
        (12.34, "12.3s"),
        (0.9996, "1.0s"),
        (0.419, "419ms"),
        (0, "0s"),
        (-90, "-1m30s"),
    ],
)
def test_format_duration_compact(seconds, text):
    assert format_duration(seconds, compact=True) == text


def test_parse_clock():
    assert parse_clock("22:00") == (22, 0)
    assert parse_clock("6:30") == (6, 30)
    for bad in ("24:00", "12:60", "noon", "1200", ""):
        with pytest.raises(ValueError, match=r"expected HH:MM \(00:00-23:59\)"):
            parse_clock(bad)


# --------------------------------------------------------------------------- layers


def test_defaults_without_a_config_file(env):
    settings = load_settings(None, env, {})
    assert settings == Settings()
    assert settings.config_path is None
    assert settings.duration is None
    assert dict(settings.weights) == default_weights()
    assert default_weights() == {name: cls.weight for name, cls in REGISTRY.items()}
    assert known_scenarios() == tuple(REGISTRY)
    assert settings.quiet_hours.start_hm == (22, 0) and settings.quiet_hours.end_hm == (6, 0)
    assert settings.timeouts.read == 120.0 and settings.output.summary_interval == 300.0


def test_example_config_parses_to_the_defaults(tmp_path, env):
    path = write(tmp_path, example_config_toml())
    settings = load_settings(path, env, {})
    assert settings == Settings()
    assert settings.config_path == path
    assert {k for k, v in settings.sources.items() if v == str(path)} == {
        k for k, spec in key_table().items() if not spec.optional
    }


def test_example_config_samples_are_valid(tmp_path, env):
    """Uncommenting every optional key in the example must give a valid config too."""
    text = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line else line
        for line in example_config_toml().splitlines()
    )
    settings = load_settings(write(tmp_path, text), env, {})
    assert settings.duration == 8 * 3600
    assert settings.scenarios == ("streaming", "tool_calling")


def test_default_file_is_read_from_the_config_dir(env):
    locations.config_file(env).write_text("throttle = 40\n", encoding="utf-8")
    settings = load_settings(None, env, {})
    assert settings.throttle == 40
    assert settings.config_path == locations.config_file(env)


def test_soaktui_config_env_names_the_file(tmp_path, env):
    path = write(tmp_path, "throttle = 45\n", "other.toml")
    assert load_settings(None, {**env, "SOAKTUI_CONFIG": str(path)}, {}).throttle == 45
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(None, {**env, "SOAKTUI_CONFIG": str(tmp_path / "nope.toml")}, {})


def test_missing_explicit_config_is_an_error(tmp_path, env):
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=f"config file {missing} does not exist"):
        load_settings(missing, env, {})


def test_precedence_defaults_file_env_flags(tmp_path, env):
    path = write(tmp_path, 'throttle = 50\nseed = 1\ntheme = "light"\n[quiet_hours]\nstart = "21:00"\n')
    env = {**env, "SOAKTUI_THROTTLE": "60", "SOAKTUI_SEED": "2"}
    flags = {"throttle": 70, "quiet_hours.start": None}
    settings = load_settings(path, env, flags)
    assert settings.throttle == 70  # flag beats env beats file
    assert settings.seed == 2  # env beats file
    assert settings.theme == "light"  # file beats default
    assert settings.quiet_hours.start == "21:00"  # a None flag is an unset flag
    assert settings.quiet_hours.end == "06:00"  # default
    assert settings.sources["throttle"] == "command line"
    assert settings.sources["seed"] == "SOAKTUI_SEED"
    assert settings.sources["theme"] == str(path)
    assert settings.sources["quiet_hours.end"] == "default"
    assert load_settings(path, env, {}).throttle == 60


def test_durations_bare_number_is_hours_but_timeouts_are_seconds(tmp_path, env):
    path = write(
        tmp_path, 'duration = 2.5\n[timeouts]\nread = 30\nrequest = "2m"\n[output]\nstatus_interval = 15\n'
    )
    settings = load_settings(path, env, {})
    assert settings.duration == 2.5 * 3600
    assert settings.timeouts.read == 30.0
    assert settings.timeouts.request == 120.0
    assert settings.output.status_interval == 15.0
    assert load_settings(path, {**env, "SOAKTUI_DURATION": "4"}, {}).duration == 4 * 3600
    assert load_settings(path, env, {"duration": "90s"}).duration == 90
    assert load_settings(path, env, {"duration": 0.5}).duration == 1800
    assert load_settings(path, env, {"duration": dt.timedelta(minutes=3)}).duration == 180


def test_env_values_are_parsed_as_the_keys_type(env):
    env = {
        **env,
        "SOAKTUI_BASE_URLS": "http://127.0.0.1:1234/v1/, https://box.lan:8443",
        "SOAKTUI_API_KEY": "sk-env",
        "SOAKTUI_MODELS": "qwen*,llama*",
        "SOAKTUI_EXCLUDE": "*embed*",
        "SOAKTUI_SCENARIOS": "streaming, tool_calling",
        "SOAKTUI_CONCURRENCY": "1,2,4",
        "SOAKTUI_MAX_SIZE_GB": "7.5",
        "SOAKTUI_OUT": "~/runs/x",
        "SOAKTUI_QUIET_HOURS__ENABLED": "off",
        "SOAKTUI_QUIET_HOURS__START": "23:30",
        "SOAKTUI_WEIGHTS__STREAMING": "4",
        "SOAKTUI_ROTATION__MAX_TESTS": "20",
        "SOAKTUI_TIMEOUTS__CONNECT": "3s",
        "SOAKTUI_THRESHOLDS__SATURATION_ERROR_RATE": "0.5",
        # not settings: ignored
        "SOAKTUI_LOG_LEVEL": "debug",
        "SOAKTUI_TEST_ANYTHING": "1",
        "SOAKTUI_SEED": "",  # empty = unset
        "PATH": "/usr/bin",
    }
    s = load_settings(None, env, {})
    assert s.base_urls == ("http://127.0.0.1:1234/v1", "https://box.lan:8443")
    assert s.api_key == "sk-env"
    assert s.models == ("qwen*", "llama*") and s.exclude == ("*embed*",)
    assert s.scenarios == ("streaming", "tool_calling")
    assert s.concurrency == (1, 2, 4)
    assert s.max_size_gb == 7.5
    assert s.out == Path("~/runs/x").expanduser()
    assert s.quiet_hours.enabled is False and s.quiet_hours.start == "23:30"
    assert s.weights["streaming"] == 4.0
    assert s.rotation.max_tests == 20
    assert s.timeouts.connect == 3.0
    assert s.thresholds.saturation_error_rate == 0.5
    assert s.seed is None
    assert s.enabled_weights == {"streaming": 4.0, "tool_calling": 2.0}


def test_bad_env_value_names_the_variable(env):
    with pytest.raises(ConfigError) as info:
        load_settings(None, {**env, "SOAKTUI_QUIET_HOURS__START": "25:00"}, {})
    assert (
        str(info.value) == "environment: SOAKTUI_QUIET_HOURS__START = '25:00': expected HH:MM (00:00-23:59)"
    )
    with pytest.raises(
        ConfigError, match=r"SOAKTUI_THROTTLE = 'fast': expected a whole-number percentage from 1 to 100"
    ):
        load_settings(None, {**env, "SOAKTUI_THROTTLE": "fast"}, {})


def test_unknown_env_variable_is_named_with_a_suggestion(env):
    with pytest.raises(ConfigError) as info:
        load_settings(None, {**env, "SOAKTUI_THROTLE": "50"}, {})
    assert "unknown variable 'SOAKTUI_THROTLE' (did you mean 'SOAKTUI_THROTTLE'?)" in str(info.value)


def test_api_key_falls_back_to_openai_api_key_and_is_redacted(env):
    assert load_settings(None, {**env, "OPENAI_API_KEY": "sk-openai"}, {}).api_key == "sk-openai"
    s = load_settings(None, {**env, "OPENAI_API_KEY": "sk-openai", "SOAKTUI_API_KEY": "sk-mine"}, {})
    assert s.api_key == "sk-mine"
    d = s.to_dict()
    assert d["api_key"] == REDACTED
    text = json.dumps(d)
    assert "sk-mine" not in text and "sk-mine" not in repr(s)
    assert load_settings(None, env, {}).to_dict()["api_key"] is None


def test_bad_api_key_is_not_echoed(env):
    with pytest.raises(ConfigError) as info:
        load_settings(None, env, {"api_key": "sk secret with spaces"})
    assert "secret" not in str(info.value) and "api_key = <redacted>" in str(info.value)


def test_overrides(env):
    s = load_settings(
        None,
        env,
        {
            "base_urls": ["http://a:1", "http://a:1/"],
            "concurrency": "2,4",
            "scenarios": ["streaming"],
            "out": Path("/tmp/x"),
            "quiet_hours.enabled": False,
            "seed": 7,
        },
    )
    assert s.base_urls == ("http://a:1",)  # normalised and de-duplicated
    assert s.concurrency == (2, 4)
    assert s.scenarios == ("streaming",)
    assert s.out == Path("/tmp/x") and s.quiet_hours.enabled is False and s.seed == 7
    with pytest.raises(
        ConfigError, match=r"unknown setting 'quiet_hours.strat' \(did you mean 'quiet_hours.start'\?\)"
    ):
        load_settings(None, env, {"quiet_hours.strat": "22:00"})
    with pytest.raises(
        ConfigError, match=r"^command line: throttle = 150: expected a whole-number percentage"
    ):
        load_settings(None, env, {"throttle": 150})


def test_to_dict_is_json_ready(tmp_path, env):
    s = load_settings(write(tmp_path, 'out = "/tmp/run"\nduration = "1h"\n'), env, {})
    d = json.loads(json.dumps(s.to_dict()))
    assert d["duration"] == 3600.0 and d["out"] == "/tmp/run"
    assert d["quiet_hours"] == {"enabled": True, "start": "22:00", "end": "06:00", "throttle": 30}
    assert d["concurrency"] == [2, 4, 8] and d["config_path"] == str(tmp_path / "config.toml")


# --------------------------------------------------------------------------- validation messages


def test_error_message_names_file_key_value_and_allowed(tmp_path, env):
    path = tmp_path / "config.toml"
    message = error_of(tmp_path, env, '[quiet_hours]\nstart = "25:00"\n')
    assert message == f"{path}: quiet_hours.start = '25:00': expected HH:MM (00:00-23:59)"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("throttle = 0", "throttle = 0: expected a whole-number percentage from 1 to 100"),
        ("throttle = 101", "throttle = 101: expected a whole-number percentage from 1 to 100"),
        ('throttle = "50"', "throttle = '50': expected a whole-number percentage from 1 to 100"),
        ("throttle = 50.5", "throttle = 50.5: expected a whole-number percentage"),
        ('duration = "forever"', "duration = 'forever': expected a bare number of hours (4, 2.5, 0.5)"),
        ("duration = 0", "duration = 0: expected a bare number of hours"),
        ('seed = "x"', "seed = 'x': expected an integer"),
        ("seed = true", "seed = True: expected an integer"),
        (
            'base_urls = ["ftp://x"]',
            "base_urls = ['ftp://x']: 'ftp://x': expected an http:// or https:// URL",
        ),
        ('base_urls = "http://x"', "base_urls = 'http://x': expected a list of http(s) URLs"),
        ('base_urls = ["http://x:99999"]', "expected an http:// or https:// URL"),
        ('models = [""]', "models = ['']: '': expected a non-empty pattern"),
        (
            'scenarios = ["strem"]',
            "'strem': unknown scenario (did you mean 'streaming'?); known: simple_inference",
        ),
        (
            "scenarios = []",
            "scenarios = []: expected at least one of scenario names (leave the key out to run them all)",
        ),
        ("max_size_gb = 0", "max_size_gb = 0: expected a number of gigabytes greater than 0"),
        (
            "concurrency = [4, 2]",
            "concurrency = [4, 2]: expected a non-empty ascending list of distinct integers",
        ),
        ("concurrency = [2, 2]", "expected a non-empty ascending list of distinct integers from 1 to 64"),
        ("concurrency = [0, 2]", "expected a non-empty ascending list"),
        ("concurrency = [2, 65]", "from 1 to 64"),
        ("concurrency = []", "concurrency = []: expected a non-empty"),
        ('theme = "a b"', "theme = 'a b': expected a theme name"),
        ("[weights]\nstreaming = -1", "weights.streaming = -1: expected a number >= 0"),
        ('[weights]\nstreaming = "lots"', "weights.streaming = 'lots': expected a number >= 0"),
        ("[rotation]\nmin_tests = 0", "rotation.min_tests = 0: expected an integer from 1 to 1000"),
        ("[rotation]\nmax_tests = 1001", "rotation.max_tests = 1001: expected an integer from 1 to 1000"),
        (
            "[rotation]\nmin_tests = 12",
            "rotation.min_tests = 12 (from {path}) is greater than rotation.max_tests = 10 (from default)",
        ),
        ('[quiet_hours]\nenabled = "yes"', "quiet_hours.enabled = 'yes': expected true or false"),
        (
            "[quiet_hours]\nthrottle = 0",
            "quiet_hours.throttle = 0: expected a whole-number percentage from 1 to 100",
        ),
        (
            '[quiet_hours]\nstart = "06:00"',
            "quiet_hours.start = '06:00' (from {path}) equals quiet_hours.end",
        ),
        ("[timeouts]\nread = 0", "timeouts.read = 0: expected a bare number of seconds (30, 2.5)"),
        ('[timeouts]\nconnect = "soon"', "timeouts.connect = 'soon': expected a bare number of seconds"),
        (
            "[thresholds]\nsaturation_error_rate = 1.5",
            "saturation_error_rate = 1.5: expected a fraction from 0 to 1",
        ),
        (
            "[thresholds]\nsaturation_latency_factor = 1",
            "saturation_latency_factor = 1: expected a number greater than 1",
        ),
        (
            "[thresholds]\nsimple_min_tokens = 0",
            "thresholds.simple_min_tokens = 0: expected a token count from 1",
        ),
        (
            "[thresholds]\nlarge_context_min_tokens = 50000",
            "thresholds.large_context_min_tokens = 50000 (from {path}) is greater than "
            "thresholds.large_context_max_tokens = 40000",
        ),
        (
            '[output]\nfsync_interval = "-1s"',
            "output.fsync_interval = '-1s': expected a bare number of seconds",
        ),
        (
            "[output]\nsummary_interval = 0.5",
            "output.summary_interval = 0.5: expected at least 1s (each rewrites test_summary.json)",
        ),
        ('[output]\nstatus_interval = "10ms"', "output.status_interval = '10ms': expected a bare number"),
        (
            '[output]\nstatus_interval = "0.2s"',
            "output.status_interval = '0.2s': expected at least 1s (each writes a status event)",
        ),
        ("[output]\ntelemetry_interval = 0.1", "output.telemetry_interval = 0.1: expected at least 0.5s"),
        (
            '[output]\nfsync_interval = "0.001s"',
            "output.fsync_interval = '0.001s': expected at least 0.05s (each is a disk flush)",
        ),
        ("rotation = 5", "rotation = 5: expected a table ([rotation])"),
        (
            'scenarios = ["streaming"]\n[weights]\nstreaming = 0',
            "every selected scenario has weight 0 (weights.streaming): at least one must be greater than 0",
        ),
    ],
)
def test_validation_errors_name_the_key(tmp_path, env, toml, expected):
    path = tmp_path / "config.toml"
    message = error_of(tmp_path, env, toml + "\n")
    assert expected.format(path=path) in message
    assert message.startswith(str(path)) or "(from " in message or "every selected" in message


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("throtle = 5", "unknown key 'throtle' (did you mean 'throttle'?)"),
        (
            "[quiet_hours]\nstrat = '22:00'",
            "unknown key 'quiet_hours.strat' (did you mean 'quiet_hours.start'?)",
        ),
        ("[weights]\nstreamng = 1.0", "unknown key 'weights.streamng' (did you mean 'weights.streaming'?)"),
        ("[quite_hours]\nstart = '22:00'", "unknown key 'quite_hours' (did you mean 'quiet_hours'?)"),
        ("start = '22:00'", "unknown key 'start' (did you mean 'quiet_hours.start'?)"),
        ("zzz = 1", "unknown key 'zzz'; top-level keys: duration, throttle"),
    ],
)
def test_unknown_keys_are_rejected_with_a_suggestion(tmp_path, env, toml, expected):
    assert expected in error_of(tmp_path, env, toml + "\n")


def test_toml_syntax_error_names_file_and_line(tmp_path, env):
    message = error_of(tmp_path, env, "throttle = 50\nseed = = 3\n")
    assert message.startswith(f"{tmp_path / 'config.toml'}: invalid TOML: ")
    assert "line 2" in message


def test_unreadable_config_files(tmp_path, env):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'theme = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(bad, env, {})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path, env, {})


# --------------------------------------------------------------------------- locations


def test_locations_honour_env_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("SOAKTUI_CONFIG_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("SOAKTUI_DATA_DIR", str(tmp_path / "d"))
    assert locations.config_dir() == tmp_path / "c"
    assert locations.config_file() == tmp_path / "c" / "config.toml"
    assert locations.data_dir() == tmp_path / "d"
    assert locations.runs_dir() == tmp_path / "d" / "runs"
    assert locations.runs_dir({"SOAKTUI_DATA_DIR": str(tmp_path / "e")}) == tmp_path / "e" / "runs"


def test_locations_default_to_platformdirs(monkeypatch):
    monkeypatch.delenv("SOAKTUI_CONFIG_DIR", raising=False)
    monkeypatch.delenv("SOAKTUI_DATA_DIR", raising=False)
    assert locations.config_dir().name == "soaktui"
    assert locations.data_dir().name == "soaktui"


def test_new_run_dir_names_and_suffixes(tmp_path):
    now = dt.datetime(2025, 1, 2, 3, 4, 5)
    ids = [locations.new_run_dir(tmp_path, now)[0] for _ in range(3)]
    assert ids == ["soak_20250102_030405", "soak_20250102_030405_2", "soak_20250102_030405_3"]
    assert all((tmp_path / i).is_dir() for i in ids)
    assert locations.latest_run_dir(tmp_path) == tmp_path / "soak_20250102_030405_3"


def test_latest_run_dir(tmp_path):
    assert locations.latest_run_dir(tmp_path / "missing") is None
    assert locations.latest_run_dir(tmp_path) is None
    for name in ("soak_20250101_000000_2", "soak_20250101_000000_10", "soak_20241231_235959", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "soak_20990101_000000").write_text("a file, not a run")
    assert locations.latest_run_dir(tmp_path) == tmp_path / "soak_20250101_000000_10"


def test_new_run_dir_defaults_under_the_data_dir(tmp_path):
    env = {"SOAKTUI_DATA_DIR": str(tmp_path)}
    run_id, path = locations.new_run_dir(env=env)
    assert path == tmp_path / "runs" / run_id and path.is_dir()
    assert locations.latest_run_dir(env=env) == path


def test_package_data_dirs_exist():
    for name in ("prompts", "themes"):
        assert locations.package_data_dir(name).is_dir()
    with pytest.raises(ValueError, match="unknown package data"):
        locations.package_data_dir("secrets")


def test_cross_check_names_where_each_value_came_from(env):
    with pytest.raises(ConfigError) as info:
        load_settings(None, {**env, "SOAKTUI_ROTATION__MIN_TESTS": "20"}, {})
    assert str(info.value) == (
        "rotation.min_tests = 20 (from SOAKTUI_ROTATION__MIN_TESTS) is greater than "
        "rotation.max_tests = 10 (from default): the minimum must not exceed the maximum"
    )
    assert load_settings(
        None, {**env, "SOAKTUI_ROTATION__MIN_TESTS": "20"}, {"rotation.max_tests": 25}
    ).rotation == (type(Settings().rotation)(20, 25))


def test_quiet_hours_accept_toml_local_times(tmp_path, env):
    s = load_settings(write(tmp_path, "[quiet_hours]\nstart = 23:30:00\nend = 05:00:00\n"), env, {})
    assert (s.quiet_hours.start, s.quiet_hours.end) == ("23:30", "05:00")
