"""Atomic writes: a write that fails midway leaves the old file and no stray staging file."""

import pytest

from bayes_bps.utils.files import staged, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "results.json"
    write_text_atomic(path, "old")
    with pytest.raises(RuntimeError), staged(path) as staging:
        staging.write_text("half")
        raise RuntimeError("killed midway")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and len(list(tmp_path.iterdir())) == 1
