"""Training input streamed from Parquet (local or s3://): bounded memory, seeded passes, exact resume.

A split too big to hold decoded in every worker (ImageNet at 227 px is ~200 GB as uint8) is read a
*window* of rows at a time, decoded and resized on a thread pool while the previous window trains, and
dropped when its batches are done. What is held is a few windows, whatever the dataset's size:
``~3 × window × 3 × S²`` bytes (2048 rows at 64 px: ~75 MB; at 227 px: ~950 MB).

The order is a pure function of (seed, pass, rank, world), as the in-memory stream's is:

- **pass p** permutes the split's row groups (the Parquet files' 256-row units), the same on every rank;
- **rank r** of ``world`` takes the contiguous range ``[N·r/W, N·r/W + N//W)`` of that order, so each
  rank reads only its ~N/W rows, and every rank has the same number of steps a pass;
- rows are shuffled **within windows** of ``window`` consecutive rows of the rank's range (a window mixes
  ``window / 256`` row groups drawn from anywhere in the split) — a windowed shuffle, not a global one;
- a pass is ``(N // W) // local`` batches of ``local`` rows (the rest dropped), so with the global batch
  split over the workers (``local = batch // W``) the global batch and the steps are those of one worker.

Windows are read and decoded either on a thread pool in the training process (``decode="threads"``) or by
Ray Data tasks on any CPU of the cluster (``decode="ray"``: ``map_batches`` over the window indices, order
preserved, in-flight windows bounded by Ray Data's streaming executor), for GPU workers whose own cores
cannot decode as fast as they train. Both give the same batches.

Step s is always the same batch, so **resume at step s** starts at pass ``s // per_pass``, reads only the
window holding the pass's row ``(s % per_pass) · local`` and the ones after it: at most one window is read
twice, never the data before it.

    src = ParquetStream("s3://bucket/imagenet", image_size=227, local=32, shard=(rank, world), seed=0)
    for x, y in src.batches(start=1200, stop=1500, device="cuda"):
        ...  # x: (32, 3, 227, 227) float in [0, 1], y: (32,) int64
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow.parquet as pq
import torch

from dgn.data.parquet import _bad_label_row, _check_shard, _files, _raise_bad_label, decode_image
from dgn.data.uri import resolve
from dgn.errors import DGNError

WINDOW = 2048  # rows shuffled together and decoded at once
DECODERS = ("threads", "ray")  # where windows are read and decoded: this process's threads, or Ray Data tasks
STREAM_ABOVE_MB = 2048  # the default PipelineConfig.stream_above_mb


def decoded_mb(n: int, image_size: int) -> float:
    """MB (1e6 bytes) of ``n`` images decoded to uint8 (3, S, S): what the in-memory path holds per copy."""
    return n * 3 * image_size * image_size / 1e6


def choose_input(n: int, image_size: int, stream_above_mb: float | None) -> tuple[bool, str]:
    """(stream?, the sentence for the log): stream when the decoded split is above ``stream_above_mb``.

    None: never stream (callers that predate streaming); 0: always stream.
    """
    mb = decoded_mb(n, image_size)
    size = f"{n} images × 3×{image_size}×{image_size} = {mb:,.0f} MB decoded"
    if stream_above_mb is None:
        return False, f"input: in memory ({size})"
    if mb > stream_above_mb:
        return True, (f"input: streaming from Parquet ({size} > stream_above_mb {stream_above_mb:g}): row groups "
                      f"shuffled per pass, rows shuffled within windows")
    return False, f"input: in memory ({size} ≤ stream_above_mb {stream_above_mb:g})"


class ParquetStream:
    """Batches for steps start…stop − 1 of endless seeded passes over this rank's share of a Parquet split.

    The same contract as ``dgn.train.loops.stream`` over an in-memory shard: ``batches(start, stop, device)``
    yields ``(x, y)`` (or ``x`` with ``labels=False``), x float (local, 3, S, S) in [0, 1] on ``device``.
    """

    def __init__(self, uri: str, split: str = "train", *, image_size: int, local: int,
                 shard: tuple[int, int] = (0, 1), seed: int = 0, window: int = WINDOW, threads: int = 0,
                 labels: bool = True, decode: str = "threads", decode_cpus: float = 1.0):
        self.rank, self.world = _check_shard(shard)
        if image_size < 1 or local < 1 or window < 1:
            raise DGNError(f"image_size ({image_size}), local batch ({local}) and window ({window}) must be ≥ 1.")
        self.uri, self.split, self.image_size, self.local, self.seed = uri, split, image_size, local, seed
        self.window, self.labels = window, labels
        if decode not in DECODERS:
            raise DGNError(f"unknown decode {decode!r}; valid: {', '.join(DECODERS)}")
        self.decode, self.decode_cpus = decode, decode_cpus
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.files = _files(uri, split)
        self.units = [(fi, g, n) for fi, f in enumerate(self.files) for g, n in enumerate(f.row_groups) if n]
        self.total = sum(n for _, _, n in self.units)
        self.rows = self.total // self.world  # rows a rank uses a pass (shards differ by at most one row)
        self.per_pass = self.rows // local
        if self.per_pass < 1:
            raise DGNError(f"{uri} {split}: {self.total} images are fewer than one batch of {local} × {self.world} "
                           f"worker(s)")
        self._fs = resolve(uri)[0]
        self._open: dict[int, pq.ParquetFile] = {}

    def describe(self) -> str:
        where = f"Ray Data tasks of {self.decode_cpus:g} CPU" if self.decode == "ray" else f"{self.threads} threads"
        return f"windows of {self.window} rows decoded by {where}; {self.per_pass} steps a pass"

    # what a pass reads

    def pieces(self, p: int) -> list[tuple[int, int, int, int]]:
        """(file, row group, first row, end row) slices making up this rank's rows of pass ``p``, in order."""
        order = np.random.default_rng([self.seed, p, 7]).permutation(len(self.units))
        lo = self.total * self.rank // self.world
        hi = lo + self.rows
        out, pos = [], 0
        for u in order:
            fi, g, n = self.units[u]
            a, b = max(lo, pos) - pos, min(hi, pos + n) - pos
            if a < b:
                out.append((fi, g, a, b))
            pos += n
            if pos >= hi:
                break
        return out

    def read_window(self, p: int, k: int, pool: ThreadPoolExecutor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Window ``k`` of pass ``p``, decoded and shuffled: (uint8 (n, 3, S, S), int64 (n,))."""
        w0, w1 = k * self.window, min((k + 1) * self.window, self.rows)  # rank-local rows of the window
        chunks, pos = [], 0
        for fi, g, a, b in self.pieces(p):
            s0, s1 = max(a, a + w0 - pos), min(b, a + w1 - pos)  # rows of this piece inside the window
            if s0 < s1:
                chunks.append((fi, g, s0, s1))
            pos += b - a
            if pos >= w1:
                break
        images, labels, wheres = [], [], []
        for fi, g, s0, s1 in chunks:
            f = self.files[fi]
            if fi not in self._open:
                self._open[fi] = pq.ParquetFile(f.path, filesystem=self._fs)
            t = self._open[fi].read_row_group(g, columns=["image", "label"]).slice(s0, s1 - s0)
            lab = t.column("label").combine_chunks()
            bad = _bad_label_row(lab)
            row0 = sum(f.row_groups[:g]) + s0
            if bad:
                _raise_bad_label(f.where, row0 + bad[0], bad[1])
            images += t.column("image").to_pylist()
            labels.append(lab.to_numpy())
            wheres += [(f.where, row0)] * (s1 - s0)
        n = len(images)
        out = np.empty((n, self.image_size, self.image_size, 3), np.uint8)  # (n, S, S, 3)

        def put(i: int) -> None:
            where, row0 = wheres[i]
            out[i] = decode_image(images[i], self.image_size, where=f"{where} row {row0 + i}")

        if pool is None:
            for i in range(n):
                put(i)
        else:
            list(pool.map(put, range(n)))
        perm = torch.from_numpy(np.random.default_rng([self.seed, p, self.rank, k, 11]).permutation(n))
        x = torch.from_numpy(out).permute(0, 3, 1, 2)[perm].contiguous()  # (n, 3, S, S)
        y = torch.from_numpy(np.concatenate(labels).astype(np.int64))[perm]
        return x, y

    # the batches

    def segments(self, start: int, stop: int) -> list[tuple[int, int, int, int, int]]:
        """(pass, first window, last window, rows of the first window to skip, steps) per pass steps start…stop − 1 touch."""
        out, step = [], start
        while step < stop:
            p, i = divmod(step, self.per_pass)
            n = min(self.per_pass - i, stop - step)  # steps taken from this pass
            o0, o1 = i * self.local, (i + n) * self.local  # rank-local rows they use
            out.append((p, o0 // self.window, (o1 - 1) // self.window, o0 % self.window, n))
            step += n
        return out

    def batches(self, start: int, stop: int, device="cpu") -> Iterator:
        segs = self.segments(start, stop)
        if not segs:
            return
        windows = [(p, k) for p, k0, k1, _, _ in segs for k in range(k0, k1 + 1)]
        with ThreadPoolExecutor(self.threads) as pool:
            chunks = self._ray_windows(windows) if self.decode == "ray" else self._thread_windows(windows, pool)
            si, (p, _, _, skip, n), carry = 0, segs[0], None  # carry: rows of a batch that straddles two chunks
            try:
                for cp, x, y in chunks:  # (pass, images, labels) in order
                    if cp != p:  # the next pass: what is left of the last one is dropped
                        si += 1
                        p, _, _, skip, n = segs[si]
                        carry = None
                    if n == 0:
                        continue
                    if skip:
                        cut = min(skip, len(x))
                        x, y, skip = x[cut:], y[cut:], skip - cut
                    if carry is not None:
                        x, y = torch.cat([carry[0], x]), torch.cat([carry[1], y])
                    j = 0
                    while j + self.local <= len(x) and n > 0:
                        xb, yb = x[j:j + self.local], y[j:j + self.local]
                        xb = xb.to(device, non_blocking=True).float().div_(255)  # (local, 3, S, S) in [0, 1]
                        yield (xb, yb.to(device)) if self.labels else xb
                        j, n = j + self.local, n - 1
                    carry = (x[j:], y[j:])
            finally:
                chunks.close()

    def _thread_windows(self, windows: list[tuple[int, int]], pool: ThreadPoolExecutor) -> Iterator:
        """(pass, x, y) of each window, read and decoded in this process, the next one while this one trains."""
        with ThreadPoolExecutor(1) as ahead:
            nxt = ahead.submit(self.read_window, *windows[0], pool)
            for j, (p, _) in enumerate(windows):
                x, y = nxt.result()
                if j + 1 < len(windows):
                    nxt = ahead.submit(self.read_window, *windows[j + 1], pool)
                yield p, x, y

    def _ray_windows(self, windows: list[tuple[int, int]]) -> Iterator:
        """The same, read and decoded by Ray Data tasks on any CPU of the cluster, in order.

        One task per window (``map_batches`` over the window indices), one Ray Data run per ``batches`` call;
        Ray Data's streaming executor bounds the decoded windows in flight, ``preserve_order`` keeps the order
        a function of the step.
        """
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"p": p, "k": k} for p, k in windows], override_num_blocks=len(windows))
        ds = ds.map_batches(_decode_windows, fn_kwargs={"src": self}, batch_size=1, batch_format="numpy",
                            num_cpus=self.decode_cpus)
        for b in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
            if len(b["p"]):
                with warnings.catch_warnings():  # zero-copy views of the object store are read-only; nothing writes
                    warnings.simplefilter("ignore", UserWarning)
                    yield int(b["p"][0]), torch.from_numpy(b["x"]), torch.from_numpy(b["y"])

    def __getstate__(self) -> dict:  # shipped to Ray Data tasks: without open file handles
        return {**self.__dict__, "_open": {}}


def _decode_windows(batch: dict, *, src: ParquetStream) -> dict:
    """A Ray Data task: window ``batch["k"]`` of pass ``batch["p"]`` as {"x": uint8 (n, 3, S, S), "y", "p": (n,)}."""
    x, y = src.read_window(int(batch["p"][0]), int(batch["k"][0]))
    return {"x": x.numpy(), "y": y.numpy(), "p": np.full(len(y), int(batch["p"][0]))}
