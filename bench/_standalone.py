"""Import funrl from this checkout where it is not installed (a GPU image without funrl's deps).

``import _standalone`` (bench/ is on ``sys.path`` when a bench script runs) maps ``funrl.policy``
and ``funrl.rollout`` onto ``policy/`` and ``rollout/`` as setup.cfg's ``package_dir`` does.
``funrl.rewards`` is left out: it needs omegaconf, which such an image lacks.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bootstrap_funrl() -> None:
    try:
        import funrl.policy  # noqa: F401
        import funrl.rollout  # noqa: F401
        return
    except ImportError:
        pass
    sys.path.insert(0, str(ROOT))
    import funrl

    for sub in ("policy", "rollout"):
        name = f"funrl.{sub}"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, ROOT / sub / "__init__.py",
                                                      submodule_search_locations=[str(ROOT / sub)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        setattr(funrl, sub, mod)


bootstrap_funrl()
