"""A sweep's episodes as Ray tasks on an existing cluster: ``peergym sweep NAME --executor ray --address ADDR``.

Every node runs its episodes on its own Docker engine, with the server image built there by the same command
as anywhere (``make image``); the custom resource ``peergym_episodes`` a node is started with bounds how many it
runs at a time (``ray start ... --resources '{"peergym_episodes": 8}'``), and a node without it runs none.

One task runs one cell's episode and returns its record; the driver writes the record under the sweep's
folder, so records are gathered in one place and the sweep's resume rules hold as they are: a record exists
only for an episode that ended, and only the driver writes it (atomically). A task whose worker or node dies
is run again by Ray elsewhere (``TASK_RETRIES``); only the attempt that ends returns a record, so an episode
is counted once. A killed attempt's containers belong to a dead process: its watchdog, or the next run's
reaper on that node, removes them (envs/sandbox/lifecycle.py). Should every attempt die, the episode gets an
infrastructure-error record, which ``--retry-errors`` runs again.
"""

from __future__ import annotations

import logging
import os
import tempfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .records import write_atomic
from .sweep import Cell, SweepError, SweepSpec, _Executor, failed_record, record_path, run_cell

RESOURCE = "peergym_episodes"
# Attempts after the first for a task whose worker process or node died (not for an exception it raised:
# an episode's own failures are in its record already).
TASK_RETRIES = 3


class RayExecutor(_Executor):
    """Submits each cell as a task needing one ``peergym_episodes`` slot; ``slots`` is the cluster's total."""

    def __init__(self, spec: SweepSpec, folder: Path, run_id: str, address: str) -> None:
        try:
            import ray
        except ImportError as exc:
            raise SweepError("--executor ray needs Ray on this machine: pip install 'peergym[ray]'") from exc
        # peergym sends nothing anywhere on its own: no usage statistics from the driver either.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SweepError(f"--address {address}: could not join the Ray cluster there: {exc}") from exc
        self.slots = int(ray.cluster_resources().get(RESOURCE, 0))
        if self.slots < 1:
            ray.shutdown()
            raise SweepError(
                f"--address {address}: no node of that Ray cluster offers the {RESOURCE!r} resource; start each "
                f"node with --resources '{{\"{RESOURCE}\": N}}' (N: episodes it runs at a time)"
            )
        self._ray = ray
        self.spec, self.folder, self.run_id = spec, folder, run_id
        self._task = ray.remote(num_cpus=0, resources={RESOURCE: 1}, max_retries=TASK_RETRIES,
                                retry_exceptions=False)(episode_on_node)  # fmt: skip

    def submit(self, cell: Cell) -> Future[dict[str, Any]]:
        stored: Future[dict[str, Any]] = Future()
        remote = self._task.remote(self.spec, cell, self.run_id).future()

        def store(done: Future[dict[str, Any]]) -> None:
            try:
                try:
                    record = dict(done.result())
                except Exception as exc:  # every attempt died (or Ray itself failed): an infrastructure error
                    record = failed_record(self.spec, cell, exc, {"executor": "ray"})
                record["path"] = None  # where the node wrote it: not in the file (as run_episode writes it)
                record["path"] = str(write_atomic(record_path(self.folder, cell), record))
                stored.set_result(record)
            except BaseException as exc:  # the driver could not write it: surfaces in the sweep's loop
                stored.set_exception(exc)

        remote.add_done_callback(store)
        return stored

    def close(self) -> None:
        self._ray.shutdown()


def episode_on_node(spec: SweepSpec, cell: Cell, run_id: str) -> dict[str, Any]:
    """The task: run ``cell``'s episode on this node's Docker engine and return its record (the copy written
    here, in a temporary folder, goes with it: the driver keeps the record)."""
    import ray

    where = {"executor": "ray", "node": ray.get_runtime_context().get_node_id()[:16],
             "node_ip": ray.util.get_node_ip_address()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="peergym-ray-") as tmp:
        return run_cell(spec, cell, Path(tmp), run_id, where=where)
