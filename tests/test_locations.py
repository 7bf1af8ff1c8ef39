"""tfckd_lite.locations: the folders the notebooks build data and write runs into, inside a
checkout and outside one (the installed wheel itself is exercised by test_wheel_install.py)."""

from pathlib import Path

import pytest

from tfckd_lite import locations

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_data_env(monkeypatch):
    monkeypatch.delenv(locations.DATA_ENV, raising=False)


@pytest.fixture
def installed(monkeypatch, no_data_env):
    """The library as a wheel installs it: no checkout around it."""
    monkeypatch.setattr(locations, "source_checkout", lambda: None)


def test_a_checkout_keeps_data_and_runs_in_its_ignored_folders(no_data_env):
    assert locations.source_checkout() == ROOT
    assert locations.data_dir("mini") == ROOT / "data" / "generated" / "mini"
    assert locations.runs_dir() == ROOT / "runs"
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "data/generated/" in ignored and "/runs/" in ignored


def test_installed_library_uses_the_cache_and_the_current_folder(installed, monkeypatch,
                                                                 tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert locations.data_dir("small") == tmp_path / "cache" / "tfckd_lite" / "data" / "small"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home_cache = tmp_path / "home" / ".cache"
    assert locations.data_dir("mini") == home_cache / "tfckd_lite" / "data" / "mini"
    assert locations.runs_dir() == Path("runs")


@pytest.mark.parametrize("checkout", [True, False])
def test_the_environment_variable_wins(checkout, monkeypatch, tmp_path):
    if not checkout:
        monkeypatch.setattr(locations, "source_checkout", lambda: None)
    monkeypatch.setenv(locations.DATA_ENV, str(tmp_path / "shared"))
    assert locations.data_dir("mini") == tmp_path / "shared" / "mini"


@pytest.mark.parametrize("profile", ["", "../mini", "a/b", "/abs"])
def test_a_profile_is_a_plain_name(profile):
    with pytest.raises(ValueError, match="plain name"):
        locations.data_dir(profile)
