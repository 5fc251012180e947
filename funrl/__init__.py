"""funrl: reinforcement learning (GRPO) for audio-language models.

The packages ``funrl.rewards``, ``funrl.rollout`` and ``funrl.policy`` live in the top-level
folders ``rewards/``, ``rollout/`` and ``policy/`` of the repository and are mapped under the
``funrl`` namespace by ``package_dir`` in setup.cfg.
"""

__version__ = "0.1.0"
