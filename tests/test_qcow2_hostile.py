"""Bad and hostile qcow2 images get one clear ImageError: never a crash, a hang, or a write
outside the file (tests/data/qcow2/make_corpus.py builds the corpus)."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import shutil
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.errors import ImageError
from sandbox.storage import open_image
from sandbox.storage.create import create_image
from sandbox.storage.qcow2 import Qcow2Image

_spec = importlib.util.spec_from_file_location(
    "make_corpus", Path(__file__).parent / "data" / "qcow2" / "make_corpus.py")
make_corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_corpus)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus.build(str(tmp_path_factory.mktemp("corpus")))


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _exercise(path: str, operation: str) -> None:
    with closing(open_image(path)) as img:
        if operation in ("read", "write"):
            img.read(0, img.size())
        if operation == "write":
            img.write(0, b"guest data")


@pytest.mark.parametrize("case", [*make_corpus.CASES, "backing-loop"])
def test_each_broken_image_gets_one_clear_error(corpus, case):
    path, operation, words = corpus[case]
    before = _sha(path)
    with pytest.raises(ImageError) as error:
        _exercise(path, operation)
    message = str(error.value)
    assert words in message
    assert message.startswith(path) and "\n" not in message
    if operation == "open":
        assert _sha(path) == before                     # a refused image is left untouched


def test_a_dirty_image_still_opens_read_only(corpus):
    path = corpus["dirty-opened-for-writing"][0]
    with Qcow2Image(path, readonly=True) as img:
        assert img.read(0, 4) == b"xxxx"


# -- property: any damage to header or tables ends in data or ImageError ----------------
SECTOR = 512


@pytest.fixture(scope="module")
def victim(tmp_path_factory):
    """A small image with every structure in use: backing file, snapshot, shared clusters."""
    folder = tmp_path_factory.mktemp("victim")
    base = folder / "base.raw"
    base.write_bytes(random.Random(1).randbytes(64 << 10))
    path = folder / "victim.qcow2"
    create_image(path, backing=str(base), cluster_size=512)
    with Qcow2Image(path) as img:
        for i in range(0, 64 << 10, 3000):
            img.write(i, b"before" * 50)
        img.create_snapshot("snap")
        for i in range(0, 64 << 10, 5000):
            img.write(i, b"after" * 40)
        l2 = [e & 0x00FFFFFFFFFFFE00 for e in img._l1 if e]
        regions = [(0, SECTOR), (img._l1_offset, 8 * len(img._l1)),
                   (img._refcounts.table_offset, SECTOR),
                   (img._refcounts.table[0], SECTOR),
                   (img._snapshots_offset, img._snapshots_length),
                   (img.snapshots[0].l1_offset, 8 * img.snapshots[0].l1_size),
                   *[(offset, SECTOR) for offset in l2],
                   (0, os.path.getsize(path))]
    return {"folder": folder, "path": path, "base": base, "base_sha": _sha(base),
            "regions": regions}


# A mutation: (region, position in region, bytes to write there).
mutations = st.lists(st.tuples(st.integers(0, 100), st.integers(0, 1 << 20),
                               st.one_of(st.binary(min_size=1, max_size=1),
                                         st.integers(0, (1 << 64) - 1).map(
                                             lambda v: v.to_bytes(8, "big")),
                                         st.sampled_from([b"\xff" * 8, b"\0" * 8,
                                                          b"\x80\0\0\0\0\0\0\0"]))),
                     min_size=1, max_size=6)


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=mutations)
def test_mutated_images_give_data_or_image_error_and_stay_in_bounds(victim, changes):
    path = victim["folder"] / "mutant.qcow2"
    shutil.copyfile(victim["path"], path)
    regions = victim["regions"]
    with open(path, "r+b") as f:
        for region, position, data in changes:
            start, length = regions[region % len(regions)]
            f.seek(start + position % max(length, 1))
            f.write(data)
    size_before = os.path.getsize(path)
    try:
        with Qcow2Image(path) as img:
            img.read(0, img.size())
            img.write(1000, b"w" * 3000)
            img.write(img.size() - 700, b"z" * 700)
            img.create_snapshot("new")
            img.apply_snapshot("snap")
            img.read(0, img.size())
    except ImageError as e:
        assert "\n" not in str(e)
    # Every write stays inside clusters the image owns or allocated: the file can grow by
    # new clusters (at most a copy of each table plus the written data), never wildly.
    assert os.path.getsize(path) <= 2 * size_before + 64 * SECTOR
    assert _sha(victim["base"]) == victim["base_sha"]  # the backing file is never written
