"""Waiting on a live server's job: poll its resource until a condition holds."""

from __future__ import annotations

import time

import httpx


def wait_for_job(client: httpx.Client, url: str, condition, timeout_s: float = 240) -> dict:
    """The job at ``url`` once ``condition(job)`` holds; an AssertionError showing the job when
    it does not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if condition(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out; job is {job}")
