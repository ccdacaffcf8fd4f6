"""The Dask runner of the per-tilt simulations (:mod:`.abtem_adf`, :mod:`.ptycho`).

Each tilt is an independent ``dask.delayed`` task: local threads by default, a
``dask.distributed`` cluster when ``scheduler`` is an address or a ``Client``.
"""
from __future__ import annotations

import os

__all__ = ["run_tasks"]


def run_tasks(func, jobs: list[dict], scheduler, progress: bool, desc: str = "abTEM tilts") -> list:
    """Run ``func(job)`` for every job as dask.delayed tasks (one per tilt), with a tqdm progress bar.

    ``scheduler``: ``None``/``"threads"`` (local threads, one per core), ``"synchronous"``, ``"processes"``, a
    dask.distributed scheduler address or a ``Client``.  Results come back in the order of ``jobs``.
    """
    import dask
    from tqdm.auto import tqdm

    tasks = [dask.delayed(func, pure=False)(job) for job in jobs]
    bar = tqdm(total=len(tasks), desc=desc, unit="tilt", disable=not progress)
    try:
        if scheduler is not None and not (isinstance(scheduler, str) and scheduler in
                                          ("threads", "synchronous", "sync", "processes")):
            from dask.distributed import Client, as_completed

            client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
            futures = client.compute(tasks)
            for _ in as_completed(futures):
                bar.update(1)
            return client.gather(futures)
        from dask.callbacks import Callback

        keys = {t.key for t in tasks}

        def posttask(key, result, dsk, state, worker_id):
            if key in keys:
                bar.update(1)

        with Callback(posttask=posttask):
            return list(dask.compute(*tasks, scheduler=scheduler or "threads",
                                     num_workers=min(len(tasks), os.cpu_count() or 1)))
    finally:
        bar.close()
