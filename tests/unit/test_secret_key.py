"""Where the secret key comes from: given, a named file, or a file made once and reused."""

from __future__ import annotations

import multiprocessing
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from pmrunner.errors import ConfigurationError
from store.secret_key import default_key_file, secret_key


def test_without_a_key_given_one_is_made_readable_by_its_owner_only_and_reused(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    key = secret_key(None, None, data_dir)
    path = default_key_file(data_dir)
    assert len(key) >= 40 and path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert secret_key(None, None, data_dir) == key  # reused, not made again
    assert [p.name for p in data_dir.iterdir()] == ["secret-key"]  # no temporary file left


def test_processes_starting_together_all_read_the_same_new_key(tmp_path: Path) -> None:
    # Spawned, not forked: a fork of this multi-threaded test process can inherit a
    # lock that another thread held (the children then wait forever).
    with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as pool:
        keys = set(pool.map(secret_key, [None] * 8, [None] * 8, [tmp_path] * 8))
    assert keys == {default_key_file(tmp_path).read_text().strip()}


def test_a_given_key_comes_first_then_the_key_file_then_the_data_directory(
    tmp_path: Path,
) -> None:
    mounted = tmp_path / "mounted"
    mounted.write_text("from-the-file\n")
    assert secret_key("given", mounted, tmp_path) == "given"
    assert secret_key(None, mounted, tmp_path) == "from-the-file"
    assert not default_key_file(tmp_path).exists()  # nothing is made when a key is given


def test_an_empty_or_missing_key_file_is_refused_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="is empty"):
        secret_key(None, empty, tmp_path)
    with pytest.raises(ConfigurationError, match=r"secret key file .*missing"):
        secret_key(None, tmp_path / "missing", tmp_path)
