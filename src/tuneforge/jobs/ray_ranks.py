"""A multi-device job under the Ray executor: one Ray actor per rank, placed by Ray.

The job's runner (itself a Ray actor, ``jobs/ray_executor.py``) prepares the datasets as for
any job, then asks Ray for a placement group of one bundle per rank (a GPU each on a cluster
with GPUs, else a CPU each), packed onto one node where one has room, spread over several
where none has. It starts one actor per bundle and gives each torch.distributed's env
rendezvous: ``MASTER_ADDR`` is rank 0's node and ``MASTER_PORT`` a port free there (found by
rank 0's actor), with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` per
actor. Each actor runs ``ranks.train_rank`` as a rank under the elastic launcher does; rank 0
reports to the store and files the checkpoints, and its result comes back to the runner.

How the ranks end with their job:

* cancel, pause and a stopping server reach rank 0 through the store, which shares the request
  with every rank at the step's end (``engine/distributed.py``), as under the local launcher;
* a rank that fails ends the others (``ray.kill``) and fails the job with the lowest failed
  rank's own error (:func:`_failure`);
* the runner removes its placement group and kills the rank actors when it returns or raises;
  a runner that is killed (``ray.kill``, its worker lost) takes its rank actors with it, since
  Ray ends the actors whose owner died. A placement group outlives the actor that created it
  (it belongs to the job's driver, the scheduler), so the executor removes a dead runner's
  group by its name (:func:`remove_rank_group`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections import defaultdict
from pathlib import Path
from typing import Any

from tuneforge.engine.errors import TuningError
from tuneforge.engine.result import TuningResult
from tuneforge.errors import TuneforgeError
from tuneforge.jobs.ranks import RankWork, train_rank

log = logging.getLogger("tuneforge.ranks")

GROUP_PREFIX = "ranks-"
# How long the other ranks have to end on their own after one failed (their own errors say
# more than a kill's), before they are killed.
SHUTDOWN_TIMEOUT_S = 5.0


def group_name(runner_name: str) -> str:
    """The placement group of the runner actor named ``runner_name``."""
    return f"{GROUP_PREFIX}{runner_name}"


class RankActor:
    """One rank of a job: a Ray worker process of its own."""

    def node(self) -> tuple[str, str, list[str]]:
        """Its node's id and IP address, and the GPUs Ray gave it."""
        import ray

        context = ray.get_runtime_context()
        gpus = [str(g) for g in context.get_accelerator_ids().get("GPU", [])]
        return context.get_node_id(), ray.util.get_node_ip_address(), gpus

    def free_port(self) -> int:
        """A TCP port free on this node now, for the ranks' rendezvous (rank 0's node)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("", 0))
            return probe.getsockname()[1]

    def pid(self) -> int:
        return os.getpid()

    def run(self, work: RankWork, env: dict[str, str], threads: int | None) -> TuningResult:
        from tuneforge.models.threads import set_process_share
        from tuneforge.storage import storage_for

        os.environ.update(env)
        set_process_share(threads)
        if not work.output_dir.is_dir():  # another node than the runner's: fetch the saves
            storage_for(work.settings).fetch_job(work.job_id)
        work.log_dir.mkdir(parents=True, exist_ok=True)
        _log_to(work.log_dir / f"rank-{env['RANK']}.log")
        return train_rank(work)


def _log_to(path: Path) -> None:
    """Send this worker's output to ``path`` in the job's folder (the worker is the rank's
    alone), not to Ray's session logs, where nobody looking at the job would find it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


def launch(work: RankWork, devices: int) -> TuningResult:
    """Train ``work`` on ``devices`` rank actors placed by Ray; rank 0's result. Called in the
    runner's actor."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    work.runner_pid = 0  # the rank actors die with their owner, the runner's actor, not a pid
    work.log_dir.mkdir(parents=True, exist_ok=True)
    gpus = ray.cluster_resources().get("GPU", 0) > 0
    bundle = {"GPU": 1} if gpus else {"CPU": 1}
    runner_name = ray.get_runtime_context().get_actor_name() or f"job-{work.job_id}"
    group = placement_group([dict(bundle)] * devices, strategy="PACK", name=group_name(runner_name))
    actors: list[Any] = []
    try:
        log.info(
            "job %s: waiting for Ray to place %d ranks (%s each)", work.job_id, devices, bundle
        )
        ray.get(group.ready())
        actor_class = ray.remote(RankActor)
        for index in range(devices):
            actors.append(
                actor_class.options(
                    num_cpus=0 if gpus else 1,
                    num_gpus=1 if gpus else 0,
                    max_restarts=0,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        group, placement_group_bundle_index=index
                    ),
                ).remote()
            )
        nodes = ray.get([actor.node.remote() for actor in actors])
        envs = rendezvous(nodes, ray.get(actors[0].free_port.remote()))
        runner_node = ray.get_runtime_context().get_node_id()
        log.info(
            "job %s: ranks in Ray workers %s on %d node(s), rank 0 at %s:%s",
            work.job_id,
            ray.get([actor.pid.remote() for actor in actors]),
            len({node for node, _, _ in nodes}),
            envs[0]["MASTER_ADDR"],
            envs[0]["MASTER_PORT"],
        )
        if any(node != runner_node for node, _, _ in nodes):
            log.info("job %s: some ranks run on another node than the runner", work.job_id)
        done = [
            actor.run.remote(work, env, None if gpus else int(env["LOCAL_WORLD_SIZE"]))
            for actor, env in zip(actors, envs, strict=True)
        ]
        return _results(ray, done)[0]
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        with contextlib.suppress(Exception):
            remove_placement_group(group)


def rendezvous(nodes: list[tuple[str, str, list[str]]], port: int) -> list[dict[str, str]]:
    """torch.distributed's env rendezvous for each rank, given where each rank's actor is
    (:meth:`RankActor.node`, in rank order): rank 0's node and ``port`` there are the master.

    Ray shows each GPU actor only its own GPU; the ranks of one node are shown all of that
    node's ranks' GPUs instead, each using the one at its ``LOCAL_RANK`` (as torchrun's ranks
    on one machine do), so that they can reach each other's devices (NCCL)."""
    by_node: dict[str, list[int]] = defaultdict(list)
    for index, (node, _, _) in enumerate(nodes):
        by_node[node].append(index)
    envs = []
    for index, (node, _, gpus) in enumerate(nodes):
        peers = by_node[node]
        env = {
            "MASTER_ADDR": nodes[0][1],
            "MASTER_PORT": str(port),
            "RANK": str(index),
            "WORLD_SIZE": str(len(nodes)),
            "LOCAL_RANK": str(peers.index(index)),
            "LOCAL_WORLD_SIZE": str(len(peers)),
        }
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(nodes[peer][2][0] for peer in peers)
        envs.append(env)
    return envs


def _results(ray: Any, done: list[Any]) -> list[TuningResult]:
    """Every rank's result, in rank order; when one fails, the others are given a moment to
    end on their own and the job fails with :func:`_failure`."""
    pending = list(done)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            ray.get(ready[0])
        except Exception:
            if pending:
                ray.wait(pending, num_returns=len(pending), timeout=SHUTDOWN_TIMEOUT_S)
            raise _failure(ray, done) from None
    return ray.get(done)


def _failure(ray: Any, done: list[Any]) -> TuningError:
    """The error a failed rank fails the job with: a rank's own (the lowest rank's, when
    several raised one), else how the lowest failed rank ended."""
    errors: list[tuple[int, Exception]] = []
    for index, ref in enumerate(done):
        ready, _ = ray.wait([ref], timeout=0)
        if not ready:
            continue
        try:
            ray.get(ref)
        except Exception as err:
            errors.append((index, err))
    for _, err in errors:
        cause = getattr(err, "cause", None)
        if isinstance(cause, TuningError):
            return TuningError(str(cause), code=cause.code)
        if isinstance(cause, TuneforgeError):
            return TuningError(str(cause), code=getattr(cause, "code", "invalid_request"))
    index, first = errors[0]
    cause = getattr(first, "cause", None) or first
    what = f"{type(cause).__name__}: {cause}".strip().splitlines()[0]
    return TuningError(
        f"rank {index} of the job's Ray actors failed: {what}", code="internal_error"
    )


def remove_rank_group(ray: Any, runner_name: str) -> None:
    """Free the placement group the runner actor named ``runner_name`` left, if it left one
    (it was killed before it could remove it)."""
    from ray.util import get_placement_group, remove_placement_group

    with contextlib.suppress(ValueError):  # none left
        remove_placement_group(get_placement_group(group_name(runner_name)))
