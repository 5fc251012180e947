"""Configuration: structured dataclasses are the schema, YAML files set what differs.

>>> from funrl.config import load_config
>>> cfg = load_config(None, ["run.seed=3"])
>>> cfg.run.seed
3
"""

from funrl.config.loader import ConfigError, load_config, to_yaml, validate_files
from funrl.config.schema import FunRLConfig, RunConfig

__all__ = ["ConfigError", "FunRLConfig", "RunConfig", "load_config", "to_yaml", "validate_files"]
