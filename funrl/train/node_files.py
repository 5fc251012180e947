"""Files between the driver and the workers, for clusters without a shared disk.

Nothing a worker writes is assumed visible to the driver, nor the reverse: a worker writes into a
scratch folder on its own node (:func:`node_dir`) and hands the folder's files back through Ray
(:func:`pack_folder`, bytes by relative path); the driver writes them into the run directory
(:func:`write_folder`, atomically). A resume goes the other way. The only paths every node must
see are the ones the user installs there: the code, its environment, and ``model.path``.

What travels this way: policy checkpoints and exports (from policy rank 0), and a transformers
family's text LM, which each node exports for itself from ``model.path``
(:func:`funrl.models.families.text_lm_folder` into :func:`node_dir`). Profile spans already travel
as records (:mod:`funrl.profiling`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def node_dir(run_name: str) -> Path:
    """This node's scratch folder for a run (0700, under the node's temp folder, one per Ray node)."""
    import ray

    node = ray.get_runtime_context().get_node_id()[:12] if ray.is_initialized() else "local"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in run_name)
    path = Path(tempfile.gettempdir()) / f"funrl-{safe}-{node}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def pack_folder(folder: str | Path) -> dict[str, bytes]:
    """Every file under ``folder``: ``{relative posix path: bytes}``."""
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_folder(files: dict[str, bytes], dest: str | Path) -> Path:
    """Write ``files`` (from :func:`pack_folder`) as the folder ``dest``, replacing it atomically:
    into ``dest.tmp-{pid}`` first, then renamed, so ``dest`` is never half-written."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for rel, data in files.items():
            path = (tmp / rel).resolve()
            if not path.is_relative_to(tmp.resolve()):
                raise ValueError(f"write_folder: {rel!r} would land outside {dest}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def scratch_folder(run_name: str, what: str) -> Path:
    """A fresh, empty folder in this node's scratch (the caller removes it)."""
    return Path(tempfile.mkdtemp(prefix=f"{what}-", dir=node_dir(run_name)))
