"""Reading a whole S3 object: pyarrow's input stream against its random-access file, side by side.

    python bench/s3_read.py                    # 1, 12, 68 MB objects (a DGN G checkpoint is 68 MB) on a local moto S3
    python bench/s3_read.py --bucket s3://my-bucket/tmp --sizes 68 --repeats 5   # on the S3 the environment names
    python bench/s3_read.py --dry-run          # one 2 MB object (a smoke test)

Every checkpoint, manifest and report the job reads from S3 is read whole. ``dgn.data.uri.read_bytes`` does it
with ``open_input_file`` (a HEAD, then one GET of known size); ``open_input_stream().read()``, what the project
used before, fetches the object in small pieces. Each size is written once (one PutObject), then read --repeats
times each way, alternating, in this process; the table shows the median seconds of each way and their ratio.
The stream's cost is its many ranged GETs (one per ~1 MB piece, each a round trip); moto also copies the whole
object for every range, so on moto the gap grows with the square of the size, and on AWS S3 it is smaller.
With no --bucket a moto server on 127.0.0.1 (the tests' S3) is started for the run; with --bucket the AWS_*
settings of the environment apply and the objects are deleted at the end. The matmul probe is printed beside
the figures, since a shared machine's times move with it.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from contextlib import contextmanager

from common import parse_args

from dgn.data.uri import read_bytes, resolve
from dgn.timing import matmul_probe

HEADER = "| object MB | stream s | file s (read_bytes) | stream / file |"


@contextmanager
def _local_s3():
    """A moto S3 server on 127.0.0.1 with a bucket, and the AWS_* settings that reach it; yields s3://bucket/prefix."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = dict(os.environ)
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="dgn-bench")
        yield "s3://dgn-bench/s3-read"
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def _stream_read(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def _time(fn, uri: str) -> tuple[bytes, float]:
    t = time.perf_counter()
    data = fn(uri)
    return data, time.perf_counter() - t


def bench(prefix: str, sizes: list[float], repeats: int) -> list[tuple[float, float, float]]:
    rows = []
    for mb in sizes:
        uri = f"{prefix}/object-{mb:g}MB.bin"
        payload = os.urandom(int(mb * 1024 * 1024))
        _put_whole(uri, payload)
        stream, file = [], []
        for _ in range(repeats):
            for fn, times in ((_stream_read, stream), (read_bytes, file)):
                data, s = _time(fn, uri)
                assert data == payload, f"{fn.__name__} read {len(data)} bytes of {len(payload)}"
                times.append(s)
        rows.append((mb, statistics.median(stream), statistics.median(file)))
        fs, path = resolve(uri)
        fs.delete_file(path)
    return rows


def _put_whole(uri: str, payload: bytes) -> None:
    """One PutObject for any size (pyarrow's writer goes multipart above 10 MB; moto answers that oddly)."""
    import boto3

    bucket, key = uri.removeprefix("s3://").split("/", 1)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    boto3.client("s3", endpoint_url=endpoint).put_object(Bucket=bucket, Key=key, Body=payload)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bucket", default="", help="an s3://bucket/prefix to use (AWS_* settings from the environment); "
                   "default: a moto server on 127.0.0.1 for this run")
    p.add_argument("--sizes", default="1,12,68", help="object sizes in MB, comma-separated (default 1,12,68)")
    p.add_argument("--repeats", type=int, default=3, help="reads of each object each way; the median is shown")
    a = parse_args(p, argv, sizes="2", repeats=1)
    sizes = [float(s) for s in str(a.sizes).split(",") if s]
    probe = matmul_probe()
    if a.bucket:
        rows = bench(a.bucket.rstrip("/"), sizes, a.repeats)
    else:
        with _local_s3() as prefix:
            rows = bench(prefix, sizes, a.repeats)
    print(f"2048² fp32 matmul probe: {probe:.0f} GFLOP/s at start, {matmul_probe():.0f} at end; "
          f"median of {a.repeats} read(s) each way, alternating; S3: {a.bucket or 'moto on 127.0.0.1'}")
    print(HEADER)
    print("|---|---|---|---|")
    for mb, s, f in rows:
        print(f"| {mb:g} | {s:.3f} | {f:.3f} | {s / f:.1f}× |")


if __name__ == "__main__":
    main()
