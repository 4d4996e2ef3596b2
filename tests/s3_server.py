"""A real S3-compatible server for tests: moto's standalone server in a subprocess, speaking S3
over HTTP on a free loopback port (not an in-process mock of the client)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from tests.servers import free_port
from tuneforge.config import Settings

CREDENTIALS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing"}
REGION = "us-east-1"


class S3Server:
    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready(timeout_s=60)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not answer within 60 s")

    def new_bucket(self) -> str:
        bucket = f"tf-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(f"{self.url}/{bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
        return bucket

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """An object on this server, as a team's own bucket beside tuneforge's would hold it."""
        import obstore

        from tuneforge.storage.object_store import S3Location, S3Options, make_store

        options = S3Options(
            endpoint_url=self.url,
            region=REGION,
            access_key_id=CREDENTIALS["s3_access_key_id"],
            secret_access_key=CREDENTIALS["s3_secret_access_key"],
        )
        obstore.put(make_store(S3Location(bucket, ""), options), key, data)

    def settings(self, base: Settings, bucket: str, prefix: str = "tuneforge") -> Settings:
        """``base`` with its objects in ``s3://bucket/prefix`` on this server."""
        return base.model_copy(
            update={
                "storage_url": f"s3://{bucket}/{prefix}",
                "s3_endpoint_url": self.url,
                "s3_region": REGION,
                **CREDENTIALS,
            }
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
