"""funrl: reinforcement learning (GRPO) for audio-language models.

The packages ``funrl.rewards``, ``funrl.rollout`` and ``funrl.policy`` live in the top-level
folders ``rewards/``, ``rollout/`` and ``policy/`` of the repository and are mapped under the
``funrl`` namespace by ``package_dir`` in setup.cfg.
"""

__version__ = "0.1.0"

# Ray reads its bind setting once, at import: set it before anything imports Ray (loopback only).
from funrl.train import ray_env as _ray_env  # noqa: E402 - imports nothing heavy

_ray_env.apply()
