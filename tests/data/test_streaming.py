"""The streamed training input (dgn.data.streaming): every row once a pass, shuffled between passes, exact resume,
a fixed global batch over worker counts, S3, and the automatic choice between memory and streaming."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from dgn.data import ParquetStream, choose_input, load_split, read_meta, write_split, write_synthetic
from dgn.errors import DGNError
from dgn.train.loops import fit_local
from tests.support.ray_local import local_ray

N = 203  # rows; not a multiple of anything below


def _png(i: int) -> bytes:
    a = np.zeros((8, 8, 3), np.uint8)
    a[..., 0], a[..., 1] = i % 256, i // 256  # the row id in the pixels, to check decoding against the label
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _rows(n: int):
    return ({"image": _png(i), "label": i, "label_name": f"r{i}"} for i in range(n))


@pytest.fixture(scope="module")
def ids(tmp_path_factory) -> str:
    """Each row's label is its id: 203 rows in files of 50 and row groups of 16."""
    uri = str(tmp_path_factory.mktemp("stream") / "ids")
    write_split(_rows(N), uri, "train", rows_per_file=50, row_group_rows=16)
    return uri


def _labels(src: ParquetStream, start: int, stop: int) -> list[list[int]]:
    return [y.tolist() for _, y in src.batches(start, stop)]


def _src(uri, **kw) -> ParquetStream:
    return ParquetStream(uri, image_size=8, **{"local": 5, "window": 24, "threads": 1, **kw})


def test_every_row_at_most_once_a_pass_and_the_images_are_the_rows(ids):
    per_rank = []
    for rank in range(2):
        src = _src(ids, shard=(rank, 2))
        assert src.per_pass == (N // 2) // 5 == 20
        batches = list(src.batches(0, src.per_pass))
        assert all(x.shape == (5, 3, 8, 8) and x.dtype == torch.float32 for x, _ in batches)
        for x, y in batches:  # decoded pixels carry the row id: images and labels stay paired through the shuffle
            assert torch.equal((x[:, 0, 0, 0] * 255).round().long() + 256 * (x[:, 1, 0, 0] * 255).round().long(), y)
        per_rank.append([i for _, y in batches for i in y.tolist()])
    seen = per_rank[0] + per_rank[1]
    assert len(seen) == len(set(seen)) == 2 * 20 * 5  # no row twice in a pass, over both ranks
    assert set(per_rank[0]).isdisjoint(per_rank[1])


def test_a_single_worker_reads_every_row_of_a_pass(ids):
    src = _src(ids, local=7)  # 203 = 29 × 7: nothing dropped
    seen = sorted(i for b in _labels(src, 0, src.per_pass) for i in b)
    assert seen == list(range(N))


def test_passes_are_shuffled_differently_and_windows_mix_row_groups(ids):
    src = _src(ids, local=7)
    p0, p1 = ([i for b in _labels(src, p * 29, (p + 1) * 29) for i in b] for p in range(2))
    assert sorted(p0) == sorted(p1) == list(range(N)) and p0 != p1
    first = p0[:24]  # the first window: rows from more than one 16-row group, not in file order
    assert len({i // 16 for i in first}) > 1 and first != sorted(first)
    assert _labels(_src(ids, local=7, seed=1), 0, 3) != _labels(src, 0, 3)  # another seed, another order


def test_a_resumed_stream_gives_the_batches_an_unbroken_one_gives_and_skips_what_is_done(ids):
    src = _src(ids, shard=(1, 2), seed=3)
    whole = _labels(src, 0, 50)  # 2.5 passes of 20
    parts = [b for lo, hi in ((0, 7), (7, 33), (33, 50)) for b in _labels(_src(ids, shard=(1, 2), seed=3), lo, hi)]
    assert parts == whole
    read = []
    resumed = _src(ids, shard=(1, 2), seed=3)
    real = resumed.read_window
    resumed.read_window = lambda p, k, pool=None: read.append((p, k)) or real(p, k, pool)
    assert _labels(resumed, 33, 36) == whole[33:36]
    # step 33 is pass 1, rows 65..79 of the rank's 100: windows 2 and 3 of 24 rows; nothing before them is read
    assert read == [(1, 2), (1, 3)]


def test_the_global_batch_and_the_steps_are_fixed_over_worker_counts(ids, tmp_path):
    one = _src(ids, local=10)
    two = [_src(ids, local=5, shard=(r, 2)) for r in range(2)]
    assert one.per_pass == two[0].per_pass == two[1].per_pass == 20
    for a, b0, b1 in zip(_labels(one, 0, 25), _labels(two[0], 0, 25), _labels(two[1], 0, 25)):
        assert len(a) == len(b0) + len(b1) == 10 and not set(b0) & set(b1)
    # a global batch holding the whole pass is the same rows, one worker or two (as tests/train/test_ray_train)
    even = str(tmp_path / "even")
    write_split(_rows(64), even, "train", rows_per_file=50, row_group_rows=16)
    whole = ParquetStream(even, image_size=8, local=64, threads=1)
    halves = [ParquetStream(even, image_size=8, local=32, shard=(r, 2), threads=1) for r in range(2)]
    assert sorted(_labels(whole, 0, 1)[0]) == sorted(_labels(halves[0], 0, 1)[0] + _labels(halves[1], 0, 1)[0])


def test_too_few_rows_for_a_batch_is_one_sentence(ids):
    with pytest.raises(DGNError, match="fewer than one batch of 150 × 2"):
        _src(ids, local=150, shard=(0, 2))


def test_streams_from_s3_as_from_disk(s3_bucket, ids):
    uri = f"s3://{s3_bucket}/ids"
    write_split(_rows(N), uri, "train", rows_per_file=50, row_group_rows=16)
    assert _labels(_src(uri, shard=(0, 2), seed=2), 0, 25) == _labels(_src(ids, shard=(0, 2), seed=2), 0, 25)


@pytest.fixture(scope="module")
def ray_cluster():
    with local_ray():
        yield


def test_ray_data_tasks_decode_the_same_batches_as_threads(ray_cluster, ids):
    threads = list(_src(ids, shard=(1, 2), seed=3).batches(13, 36))  # from mid-pass 0 into pass 1
    tasks = list(_src(ids, shard=(1, 2), seed=3, decode="ray").batches(13, 36))
    assert len(tasks) == 23 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                                    for a, b in zip(threads, tasks))


def test_streamed_images_are_decoded_and_resized_as_in_memory(tmp_path):
    uri = str(tmp_path / "shapes")
    write_synthetic(uri, n_train=40, n_val=10, image_size=48)
    xs, ys = load_split(uri, "train", image_size=32)  # in file order
    src = ParquetStream(uri, image_size=32, local=8, threads=1)
    x, y = next(iter(src.batches(0, 1)))
    # images are the same bytes once decoded and resized; find each streamed one among the in-memory ones
    flat = xs.flatten(1).float().div(255)
    for xi, yi in zip(x, y):
        j = int((flat - xi.flatten()).abs().sum(1).argmin())
        assert torch.equal(flat[j], xi.flatten()) and ys[j] == yi


def test_the_input_path_is_chosen_by_decoded_size():
    assert choose_input(1000, 64, 100)[0] is False  # 12 MB
    stream, line = choose_input(10_000, 64, 100)  # 123 MB
    assert stream and "123 MB decoded > stream_above_mb 100" in line
    assert choose_input(10, 8, 0)[0] is True  # 0: always
    assert choose_input(10**7, 227, None)[0] is False  # callers without the setting keep memory


@pytest.mark.parametrize("above, path", [(0, "streaming from Parquet"), (1e6, "in memory")])
def test_a_stage_states_its_input_path_and_trains_on_either(tmp_path, above, path):
    data = str(tmp_path / "data")
    write_synthetic(data, n_train=48, n_val=16, seed=0, image_size=32)
    meta = read_meta(data)
    cfg = dict(kind="judge", data=data, storage=str(tmp_path / "run"), image_size=32, num_classes=meta.num_classes,
               class_names=meta.class_names, n_train=48, steps=4, checkpoints=2, lr=3e-3, batch_size=16, seed=0,
               stream_above_mb=above, stream_window=20)
    events = []
    fit_local([("judge", cfg)], on_event=events.append, threads=1)
    notes = [e["note"] for e in events if "note" in e]
    assert len(notes) == 1 and notes[0].startswith(f"input: {path}"), notes
    assert [(e["epoch"], e["step"]) for e in events if "epoch" in e] == [(1, 2), (2, 4)]
