"""Unit tests for coordexp.training.artifacts helpers."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from coordexp.training import artifacts as A


@dataclass
class _Cfg:
    a: int = 1
    b: object = None
    p: Path = Path("/x")


def test_plain_drops_none_and_stringifies_paths():
    assert A._plain({"c": _Cfg(), "n": None, "l": [None, 1]}) == {"c": {"a": 1, "p": "/x"}, "l": [None, 1]}


def test_unwritable_output_dir_is_a_manifest_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(A.ManifestError, match="cannot write"):
        A.write_run_manifest(blocker / "out", config_path="c.yaml", resolved={}, dataset_seed=1, repo_root=tmp_path)


def test_missing_config_source_only_warns(tmp_path, caplog):
    files = A.write_run_manifest(tmp_path, config_path=tmp_path / "missing.yaml", resolved={}, dataset_seed=1,
                                 repo_root=tmp_path)
    assert {f.name for f in files} == set(A.MANIFEST_FILES)
    assert "could not copy" in caplog.text


def test_checkpoint_without_weights_is_flagged(tmp_path):
    assert A.checkpoint_problems(tmp_path) == [f"{tmp_path}: no *.safetensors weights"]
