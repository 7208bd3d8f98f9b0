"""The content-addressed blob store: idempotent, atomic renames, no temporary files left behind."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from crm_store.blobs import BlobStore


def test_put_stores_once_under_the_sha256(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert store.put(b"hello") == digest
    assert store.get(digest) == b"hello"
    assert store.exists(digest)
    assert store.path_of(digest) == tmp_path / "blobs" / digest[:2] / digest
    assert [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [digest]


def test_many_blobs_leave_no_temporary_files(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digests = {store.put(str(i).encode()) for i in range(300)}
    files = {p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()}
    assert files == digests
    assert all(store.get(d) for d in digests)


def test_a_directory_removed_behind_its_back_is_made_again(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    store.put(b"first")
    shutil.rmtree(tmp_path / "blobs")
    digest = store.put(b"first")  # same fan-out directory, remembered as made
    assert store.get(digest) == b"first"


def test_two_stores_on_one_root_share_it(tmp_path: Path) -> None:
    one, two = BlobStore(tmp_path), BlobStore(tmp_path)
    assert two.get(one.put(b"shared")) == b"shared"
    assert two.put(b"shared") == one.put(b"shared")


@pytest.mark.parametrize("name", ["", "../etc/passwd", "A" * 64, "0" * 63, "0" * 64 + "\n"])
def test_path_of_refuses_what_is_not_a_digest(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        BlobStore(tmp_path).path_of(name)


def test_a_blob_in_the_older_two_level_layout_is_found_and_not_stored_again(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"old").hexdigest()
    legacy = tmp_path / "blobs" / digest[:2] / digest[2:4] / digest
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"old")
    store = BlobStore(tmp_path)
    assert store.exists(digest) and store.get(digest) == b"old"
    assert store.path_of(digest) == legacy
    assert store.put(b"old") == digest
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [legacy]


def test_a_sync_makes_at_most_256_fan_out_directories(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    for i in range(2000):
        store.put(str(i).encode())
    directories = [p for p in (tmp_path / "blobs").iterdir() if p.is_dir()]
    assert len(directories) == 256
    assert not any(p.is_dir() for d in directories for p in d.iterdir())
