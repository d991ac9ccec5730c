"""A benchmark's scratch folder: gone after a run, kept (and named) after a failure."""

from __future__ import annotations

import tempfile

import pytest

from benchmarks.harness import bench_home


def test_a_run_that_ends_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with bench_home("t") as home:
        (home / "broker").mkdir()
        (home / "broker" / "segment.log").write_bytes(b"x" * 1024)
        assert home.parent == tmp_path and home.name.startswith("prsm-t-")
    assert not home.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_fails_keeps_its_folder_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(RuntimeError, match="broker gone"), bench_home("t") as home:
        (home / "worker.log").write_text("the reason")
        raise RuntimeError("broker gone")
    assert (home / "worker.log").read_text() == "the reason"
    assert f"kept for its logs: {home}" in capsys.readouterr().err
