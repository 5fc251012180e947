"""Build the stand-in ``libcuda.so.1`` that lets SGLang's CPU path import sgl_kernel.

PyPI's ``sglang-kernel`` wheels are CUDA builds linked against the NVIDIA driver library. On a
machine without the driver, ``import sgl_kernel`` (which SGLang's CPU engine does) fails with
``libcuda.so.1: cannot open shared object file``. :func:`ensure_cuda_stub` compiles
``libcuda_stub.c`` with gcc into a cache directory, adding one stub for every ``cu*`` driver symbol
that the installed sgl_kernel shared objects import (``nm -D --undefined-only``); each returns
``CUDA_ERROR_NO_DEVICE`` (100). It then preloads the stub in this process (the loader matches it
by soname for later ``dlopen``s) and puts its folder on ``LD_LIBRARY_PATH`` for the SGLang
scheduler processes spawned afterwards.

Nothing happens where a real driver library loads: GPU machines use the real one.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("libcuda_stub.c")
_DRIVER_SYMBOL = re.compile(r"^cu[A-Z]\w*$")  # driver API: cuInit, cuLaunchKernel, cuMemAlloc_v2


def driver_available() -> bool:
    """True when a real ``libcuda.so.1`` can be loaded (an NVIDIA driver is installed)."""
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def sgl_kernel_driver_symbols() -> list[str]:
    """The ``cu*`` driver symbols the installed sgl_kernel shared objects leave undefined."""
    spec = importlib.util.find_spec("sgl_kernel")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "sgl_kernel is not installed in this Python environment "
            f"({sys.executable}); build the SGLang env with `bash rollout/sglang_env.sh` "
            "and run under its python"
        )
    if shutil.which("nm") is None:
        raise RuntimeError("`nm` (binutils) is needed to build the libcuda stand-in: apt-get install binutils")
    symbols: set[str] = set()
    for root in spec.submodule_search_locations:
        for so in sorted(Path(root).rglob("*.so*")):
            out = subprocess.run(["nm", "-D", "--undefined-only", str(so)],
                                 capture_output=True, text=True, check=False).stdout
            for line in out.splitlines():
                name = line.split()[-1].split("@")[0] if line.strip() else ""
                if _DRIVER_SYMBOL.match(name):
                    symbols.add(name)
    return sorted(symbols)


def build_cuda_stub(cache_dir: str | os.PathLike | None = None) -> Path:
    """Compile the stand-in into ``cache_dir`` (default ``~/.cache/funrl/cuda_stub/<hash>``)."""
    base = SOURCE.read_text()
    fixed = set(re.findall(r"^STUB\((\w+)\)", base, flags=re.M))
    extra = [s for s in sgl_kernel_driver_symbols() if s not in fixed]
    source = base + "".join(f"STUB({s})\n" for s in extra)
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    root = Path(cache_dir or Path.home() / ".cache" / "funrl" / "cuda_stub") / key
    lib = root / "libcuda.so.1"
    if lib.exists():
        return lib
    if shutil.which("gcc") is None:
        raise RuntimeError("gcc is needed to build the libcuda stand-in: apt-get install gcc")
    root.mkdir(parents=True, exist_ok=True)
    (root / "libcuda_stub.c").write_text(source)
    tmp = root / f"libcuda.so.1.tmp{os.getpid()}"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wl,-soname,libcuda.so.1",
                    "-o", str(tmp), str(root / "libcuda_stub.c")], check=True)
    tmp.replace(lib)  # atomic: concurrent builders never see a half-written library
    log.info("built libcuda stand-in with %d symbols at %s", len(fixed) + len(extra), lib)
    return lib


def ensure_cuda_stub() -> Path | None:
    """Make sgl_kernel importable here and in child processes; ``None`` where a driver exists."""
    if driver_available():
        return None
    lib = build_cuda_stub()
    ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    if str(lib.parent) not in paths:
        os.environ["LD_LIBRARY_PATH"] = ":".join([str(lib.parent), *paths])
    return lib
