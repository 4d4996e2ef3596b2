"""ObjectStorage: uploads and every job's results in an S3-compatible bucket, through obstore.

The layout under ``s3://bucket/prefix`` (``TUNEFORGE_STORAGE_URL``), known here only:

    files/<file_id>.jsonl                uploads
    jobs/<job_id>/checkpoints/<name>/    a job's checkpoints and newest resume point
    jobs/<job_id>/metrics.csv            its metrics and loss curve
    jobs/<job_id>/loss_curve.png

Nothing of a job lives on the server's disk. What stays on a machine is under its data dir's
``cache/``, and all of it can be deleted whenever no job runs there:

    cache/objects/<uri hash>-<version>/  copies of objects fetched to be read (an upload to
                                         validate or train on, a checkpoint to serve), keyed by
                                         the objects' ETags, so a changed object is fetched
                                         anew; least recently used first out past
                                         ``TUNEFORGE_OBJECT_CACHE_BYTES``
    cache/jobs/<job_id>/                 the folder a job trains into on the machine running it:
                                         each save is uploaded as soon as it is complete, and
                                         all but the runner's logs is removed when the run ends
    cache/<hash>.<ext>                   remote datasets fetched by URI (jobs/datasets.py)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from tuneforge.errors import NotFound
from tuneforge.storage.local import UPLOAD_SUFFIX, segment
from tuneforge.storage.uri import StorageError, local_file, scheme_of

log = logging.getLogger("tuneforge.storage")

S3 = "s3"
# Written into a job's local folder: what of it is in the store, so a save uploads only what
# changed and a file the engine deleted (an older resume point) is deleted from the store too.
PUBLISHED_MANIFEST = ".published.json"
KEPT_AFTER_RUN = {"logs"}  # the runner's own log, still being written as the run ends
COMPLETE_MARK = ".complete"  # a cache entry is whole once this is in it


def is_plain_key(key: str) -> bool:
    """Whether an object key names one object as written: no empty, ``.`` or ``..`` part."""
    return all(part not in ("", ".", "..") for part in key.split("/"))


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing "/"; "" for the whole bucket

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if scheme_of(url) != S3:
            raise StorageError(f"TUNEFORGE_STORAGE_URL {url!r}: only s3://bucket/prefix is known")
        bucket, _, prefix = url[len(S3) + 3 :].partition("/")
        prefix = prefix.strip("/")
        if not bucket or (prefix and not is_plain_key(prefix)):
            raise StorageError(f"TUNEFORGE_STORAGE_URL {url!r} is not s3://bucket[/prefix]")
        return cls(bucket, prefix)

    @property
    def url(self) -> str:
        return f"{S3}://{self.bucket}/{self.prefix}".rstrip("/")

    def holds(self, bucket: str, key: str) -> bool:
        """Whether the object ``key`` of ``bucket`` is under this location."""
        return bucket == self.bucket and (not self.prefix or key.startswith(self.prefix + "/"))


@dataclass(frozen=True)
class S3Options:
    """How to reach the store; credentials left unset come from the standard AWS environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


def make_store(location: S3Location, options: S3Options, *, patient: bool = True):
    """An obstore S3Store for the bucket and prefix (obstore reads the AWS variables itself).
    Not ``patient``: a request gives up within about half a minute (obstore retries for three
    minutes by default), for reads a user waits on."""
    from obstore.store import S3Store

    config: dict[str, str] = {}
    if options.endpoint_url:
        config["endpoint"] = options.endpoint_url
        # Path-style addressing: MinIO, moto and most self-hosted stores serve no bucket DNS.
        config["virtual_hosted_style_request"] = "false"
    if options.region:
        config["region"] = options.region
    if options.access_key_id:
        config["access_key_id"] = options.access_key_id
    if options.secret_access_key:
        config["secret_access_key"] = options.secret_access_key
    client: dict = {}
    if (options.endpoint_url or "").startswith("http://"):
        client["allow_http"] = True
    retry = None
    if not patient:
        client["connect_timeout"] = timedelta(seconds=5)
        retry = {"max_retries": 2, "retry_timeout": timedelta(seconds=20)}
    return S3Store(
        location.bucket,
        prefix=location.prefix or None,
        config=config,
        client_options=client,
        retry_config=retry,
    )


def read_object(bucket: str, key: str, options: S3Options) -> Iterator[bytes]:
    """The bytes of any object the store's endpoint and credentials reach, in chunks of about
    a MiB: a dataset or a media file that a job names by ``s3://`` URI. obstore's errors pass
    through (``FileNotFoundError`` for a missing object); a key obstore will not address is
    an ``OSError`` too."""
    import obstore

    store = make_store(S3Location(bucket, ""), options, patient=False)
    try:
        result = obstore.get(store, key)
    except ValueError as err:  # obstore's own check of the key
        raise OSError(f"the key is not valid: {err}") from err
    for chunk in result.stream(min_chunk_size=1 << 20):
        yield bytes(chunk)


class ObjectStorage:
    """Objects in an S3-compatible bucket under one prefix; ``local_path`` gives a cached copy,
    ``publish`` uploads what a job wrote into its local folder."""

    def __init__(
        self,
        url: str,
        data_dir: Path,
        options: S3Options | None = None,
        cache_max_bytes: int = 20 << 30,
    ) -> None:
        self.where = S3Location.parse(url)
        self.store = make_store(self.where, options or S3Options())
        root = Path(data_dir).absolute()
        self.models_dir = root / "models"
        self.cache_dir = root / "cache"
        self.local_key_path = root / "api_key"
        self.objects_dir = self.cache_dir / "objects"
        self.jobs_dir = self.cache_dir / "jobs"
        self.cache_max_bytes = cache_max_bytes
        self._fetching = threading.Lock()

    @property
    def location(self) -> str:
        return self.where.url

    def prepare(self) -> None:
        """Create the local cache, and check that the bucket answers: a wrong endpoint, bucket
        or credential stops the server as it starts, not its first upload."""
        import obstore

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            next(iter(obstore.list(self.store, "files", chunk_size=1)), None)
        except Exception as err:
            raise StorageError(f"the object store {self.location} cannot be listed: {err}") from err

    # -- addressing ------------------------------------------------------------------------

    def _uri(self, key: str) -> str:
        return f"{self.where.url}/{key}"

    def _key(self, uri: str) -> str:
        """The key under the prefix that a URI names; StorageError for one outside it."""
        if scheme_of(uri) != S3:
            raise StorageError(f"{uri!r} is not an object of {self.location}")
        base = self.where.url + "/"
        key = uri[len(base) :] if uri.startswith(base) else None
        if not key or not is_plain_key(key):
            raise StorageError(f"{uri!r} is outside the storage's prefix {self.location}")
        return key

    def upload_uri(self, file_id: str) -> str:
        return self._uri(f"files/{segment(file_id, 'file id')}{UPLOAD_SUFFIX}")

    def job_uri(self, job_id: str, name: str) -> str:
        return self._uri(f"jobs/{segment(job_id, 'job id')}/{segment(name, 'object name')}")

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / segment(job_id, "job id")

    # -- a job's local folder --------------------------------------------------------------

    def fetch_job(self, job_id: str) -> Path:
        """The job's folder, holding every save the job published: a run resumes from them on
        whichever machine it runs. What an earlier run here left unpublished is dropped."""
        folder = self.job_dir(job_id)
        checkpoints = folder / "checkpoints"
        shutil.rmtree(checkpoints, ignore_errors=True)
        (folder / PUBLISHED_MANIFEST).unlink(missing_ok=True)
        prefix = f"jobs/{job_id}/checkpoints/"
        published = {}
        for meta in self._list(prefix):
            relative = meta["path"][len(f"jobs/{job_id}/") :]
            self._download(meta["path"], folder / relative)
            published[relative] = _stamp(folder / relative)
        folder.mkdir(parents=True, exist_ok=True)
        _write_manifest(folder, published)
        return folder

    def release_job(self, job_id: str) -> None:
        """The run has ended: publish what changed since the last save (the engine trims saves
        as a run ends) and free the local copy, the runner's logs aside."""
        folder = self.job_dir(job_id)
        if not folder.is_dir():
            return
        if (folder / "checkpoints").is_dir():
            self._sync(folder, folder / "checkpoints")
        for entry in folder.iterdir():
            if entry.name in KEPT_AFTER_RUN:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def publish(self, path: Path) -> str:
        """Upload a file or folder a job wrote under its folder, and return its URI. A save
        under ``checkpoints/`` publishes the whole folder's changes: saves the engine pruned
        since are deleted from the store."""
        path = Path(path).absolute()
        if not path.resolve().is_relative_to(self.jobs_dir.resolve()):
            raise StorageError(f"{path} is not in a job's folder under {self.jobs_dir}")
        relative = path.relative_to(self.jobs_dir)
        if len(relative.parts) < 2:
            raise StorageError(f"{path}: publish a job's file or folder, not the job's folder")
        folder = self.jobs_dir / relative.parts[0]
        if relative.parts[1] == "checkpoints":
            self._sync(folder, folder / "checkpoints")
        else:
            self._sync(folder, path)
        return self._uri("jobs/" + relative.as_posix())

    def _sync(self, folder: Path, within: Path) -> None:
        """Make the store's copy of ``within`` (a file or folder of a job's ``folder``) what is
        on disk: upload new and changed files, delete the ones gone."""
        import obstore

        manifest = _read_manifest(folder)
        scope = within.relative_to(folder).as_posix()
        on_disk = {}
        files = [within] if within.is_file() else [p for p in within.rglob("*") if p.is_file()]
        for file in sorted(files):
            on_disk[file.relative_to(folder).as_posix()] = _stamp(file)
        job_key = f"jobs/{folder.name}/"
        for relative, stamp in on_disk.items():
            if manifest.get(relative) != stamp:
                obstore.put(self.store, job_key + relative, folder / relative)
                manifest[relative] = stamp
        gone = [
            r for r in manifest if (r == scope or r.startswith(scope + "/")) and r not in on_disk
        ]
        if gone:
            obstore.delete(self.store, [job_key + r for r in gone])
            for relative in gone:
                del manifest[relative]
        _write_manifest(folder, manifest)

    # -- reading and changing objects ------------------------------------------------------

    def local_path(self, uri: str) -> Path:
        """A local copy of the object (a file) or of the objects under it (a checkpoint folder),
        fetched into the cache unless the cached copy has the same ETags. A ``file://`` URI or
        plain path (an older row) is the local file itself. NotFound when nothing is there."""
        if scheme_of(uri) in (None, "file"):
            return local_file(uri)
        key = self._key(uri)
        listed = self._entries(key)
        if not listed:
            raise NotFound(f"no object at {uri}")
        version = hashlib.sha256(
            json.dumps([(m["path"], m["e_tag"], m["size"]) for m in listed]).encode()
        ).hexdigest()[:16]
        entry = self.objects_dir / f"{hashlib.sha256(uri.encode()).hexdigest()[:32]}-{version}"
        name = PurePosixPath(key).name
        if (entry / COMPLETE_MARK).is_file():
            os.utime(entry)  # recently used: evicted last
            return entry / name
        partial = self.objects_dir / f".{entry.name}.{uuid.uuid4().hex}"
        try:
            for meta in listed:
                self._download(meta["path"], partial / name / meta["path"][len(key) :].lstrip("/"))
            (partial / COMPLETE_MARK).touch()
            # Another thread or process may have fetched it meanwhile: the same content.
            with contextlib.suppress(OSError):
                partial.rename(entry)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        self._evict(keep=entry)
        return entry / name

    def _entries(self, key: str) -> list[dict]:
        """Every object under ``key/`` (a checkpoint folder, one listing), else the object at
        ``key`` itself; none when neither is there."""
        import obstore

        if under := self._list(key + "/"):
            return under
        try:
            return [obstore.head(self.store, key)]
        except FileNotFoundError:
            return []

    def _list(self, folder: str) -> list[dict]:
        """Every object under ``folder`` (a key ending in "/"), at any depth."""
        import obstore

        assert folder.endswith("/"), folder
        return [meta for batch in obstore.list(self.store, folder) for meta in batch]

    def _download(self, key: str, target: Path) -> None:
        import obstore

        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as sink:
            for chunk in obstore.get(self.store, key):
                sink.write(chunk)

    def _evict(self, keep: Path) -> None:
        """Remove least recently used cache entries while the cache is over its size."""
        with self._fetching:
            entries = [
                e
                for e in self.objects_dir.iterdir()
                if not e.name.startswith(".") and (e / COMPLETE_MARK).is_file()  # not a fetch
            ]
            sizes = {e: _tree_bytes(e) for e in entries}
            total = sum(sizes.values())
            for entry in sorted(entries, key=lambda e: e.stat().st_mtime):
                if total <= self.cache_max_bytes:
                    break
                if entry == keep:
                    continue
                shutil.rmtree(entry, ignore_errors=True)
                total -= sizes[entry]

    def exists(self, uri: str) -> bool:
        if scheme_of(uri) in (None, "file"):
            return local_file(uri).exists()
        return bool(self._entries(self._key(uri)))

    def read_bytes(self, uri: str) -> bytes:
        import obstore

        if scheme_of(uri) in (None, "file"):
            return local_file(uri).read_bytes()
        try:
            return bytes(obstore.get(self.store, self._key(uri)).bytes())
        except FileNotFoundError:
            raise NotFound(f"no object at {uri}") from None

    def write_upload(self, file_id: str, chunks: Iterable[bytes]) -> str:
        """One PUT (multipart past a few MB): the object appears whole or not at all, and an
        upload that fails midway (``chunks`` raises) leaves nothing."""
        import obstore

        uri = self.upload_uri(file_id)
        obstore.put(self.store, self._key(uri), chunks)
        return uri

    def delete_upload(self, uri: str) -> bool:
        import obstore

        if scheme_of(uri) in (None, "file"):
            return False  # an older row's local file: not this storage's
        key = self._key(uri)
        if not key.startswith("files/"):
            return False
        obstore.delete(self.store, key)
        return True

    def delete_job(self, job_id: str) -> None:
        import obstore

        keys = [m["path"] for m in self._list(f"jobs/{segment(job_id, 'job id')}/")]
        for start in range(0, len(keys), 1000):  # S3 deletes at most 1000 keys a request
            obstore.delete(self.store, keys[start : start + 1000])
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def idle_uploads(self, idle_for_s: float) -> list[str]:
        """Uploads older than ``idle_for_s``: an S3 object only exists once complete, so these
        are complete uploads whose row may never have been written. (An interrupted multipart
        upload leaves parts no listing shows: a bucket lifecycle rule clears those.)"""
        idle_since = datetime.now(UTC).timestamp() - idle_for_s
        return [
            self._uri(m["path"])
            for m in self._list("files/")
            if m["path"].endswith(UPLOAD_SUFFIX) and m["last_modified"].timestamp() < idle_since
        ]


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _read_manifest(folder: Path) -> dict[str, list[int]]:
    try:
        return json.loads((folder / PUBLISHED_MANIFEST).read_text())
    except FileNotFoundError:
        return {}


def _write_manifest(folder: Path, manifest: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PUBLISHED_MANIFEST).write_text(json.dumps(manifest))


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


__all__ = ["ObjectStorage", "S3Location", "S3Options"]
