"""Local paths and ``s3://`` URIs as (pyarrow filesystem, path) pairs.

S3 settings come from the standard AWS environment variables, so the same
code talks to AWS, MinIO or a moto server in tests:

- ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (e.g. ``http://127.0.0.1:5000``)
  becomes ``endpoint_override``; an ``http://`` endpoint switches off TLS.
- ``AWS_DEFAULT_REGION`` / ``AWS_REGION`` (default ``us-east-1``).
- ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``;
  without them the AWS SDK's default chain (profile, instance role) applies.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from dgn.errors import DGNError


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def _s3_filesystem() -> pafs.S3FileSystem:
    kwargs = {
        "region": os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        # fewer round trips, and objects under 10 MB go up as one PutObject instead of a
        # multipart upload (which moto 5.2.1 answers in a form pyarrow rejects)
        "allow_delayed_open": True,
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DGNError(f"S3 endpoint {endpoint!r} is not a valid http(s) URL like http://127.0.0.1:5000.")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        kwargs.update(access_key=key, secret_key=secret)
        if os.environ.get("AWS_SESSION_TOKEN"):
            kwargs["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**kwargs)


def s3_endpoint() -> str:
    """The S3 endpoint requests go to, as a user would write it."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3 (no endpoint set)"


_CREDENTIALS = ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "EXPIRED_TOKEN", "InvalidToken",
                "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "HTTP response code 403")
_NETWORK = re.compile(r"NETWORK_CONNECTION|curlCode|Could not connect|Could not resolve|Timeout was reached")


def s3_error(uri: str, e: OSError) -> DGNError:
    """One sentence for an S3 failure: refused credentials, an endpoint that does not answer, or what S3 said.

    Never repeats the credentials themselves, only the names of the variables that hold them.
    """
    text = " ".join(str(e).split())
    code = next((c for c in _CREDENTIALS if c in text), None)
    if code:
        return DGNError(f"S3 at {s3_endpoint()} refused the credentials for {uri} ({code}); check "
                        f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the node's instance role).")
    if _NETWORK.search(text):
        detail = re.search(r"curlCode: \d+, ([^;]+)", text)
        return DGNError(f"cannot reach the S3 endpoint {s3_endpoint()} for {uri} "
                        f"({detail.group(1).strip() if detail else 'no connection'}); check AWS_ENDPOINT_URL and "
                        f"the network.")
    return DGNError(f"S3 request for {uri} failed: {text[:300]}")


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """``/data/x``, ``file:///data/x`` or ``s3://bucket/prefix`` → (filesystem, path inside it)."""
    if not isinstance(uri, str) or not uri:
        raise DGNError(f"dataset location {uri!r} is empty; give a local path or an s3://bucket/prefix URI.")
    if is_s3(uri):
        path = uri[len("s3://"):].strip("/")
        if not path:
            raise DGNError(f"S3 URI {uri!r} names no bucket; use s3://bucket/prefix.")
        return _s3_filesystem(), path
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    elif "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise DGNError(f"URI scheme {scheme!r} in {uri!r} is not supported; use a local path or s3://.")
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))


def absolute(uri: str) -> str:
    """The one normal form of a location, made on the driver before it reaches Ray.

    Local paths (relative, ``~``, ``file://``, ``./``) become absolute paths, since Ray Train
    workers, atlas actors and Tune trials do not run in the driver's directory; ``s3://`` URIs
    keep their form without a trailing ``/``; ``""`` (not given) stays ``""``. So ``runs/default``,
    ``./runs/default/`` and its absolute path are one storage everywhere (run names, manifests,
    MLflow params).
    """
    if not isinstance(uri, str):
        raise DGNError(f"location {uri!r} is not a string; give a local path or an s3://bucket/prefix URI.")
    if not uri:
        return uri
    if is_s3(uri):
        return uri.rstrip("/") if uri.rstrip("/") != "s3:/" else uri
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    elif "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise DGNError(f"URI scheme {scheme!r} in {uri!r} is not supported; use a local path or s3://.")
    return os.path.abspath(os.path.expanduser(uri))


def check_writable(uri: str, what: str = "storage") -> None:
    """Refuse, before any work, a local location that cannot become a folder we write into.

    ``s3://`` locations are checked by their first request (credentials, endpoint) instead.
    """
    if not uri or is_s3(uri):
        return
    path = absolute(uri)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise DGNError(f"{what} {uri!r} cannot be a folder: {probe} is a file; give a directory or s3:// prefix.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DGNError(f"{what} {uri!r} is not writable: no write permission on {probe}.")


def join(uri: str, *parts: str) -> str:
    """Append path parts to a local path or an s3:// URI (always '/' for S3)."""
    if is_s3(uri):
        return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(uri, *parts)


def read_bytes(uri: str) -> bytes:
    """The whole object at a local path or ``s3://`` URI, in one read.

    ``open_input_file`` (a HEAD, then one GET of known size), not ``open_input_stream``: pyarrow's
    S3 stream fetches a whole-object ``read()`` in small pieces, 90× slower for a 68 MB G checkpoint
    on the test S3 server (bench/s3_read.py). Raises FileNotFoundError for a missing object.
    """
    fs, path = resolve(uri)
    with fs.open_input_file(path) as f:
        return f.read()


def write_bytes(uri: str, data: bytes) -> str:
    """Write ``data`` to a local path or ``s3://`` URI so that a reader never sees half of it; returns ``uri``.

    Local: a temp file in the same folder, fsynced, then renamed over the target. S3: one
    PutObject (objects appear whole).
    """
    if is_s3(uri):
        fs, path = resolve(uri)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as f:
            f.write(data)
        return uri
    path = Path(uri.removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return uri
