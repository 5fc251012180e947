"""GRPO training on Ray: the driver loop (:mod:`.driver`), the role actors (:mod:`.workers`),
placement and device ownership (:mod:`.cluster`, :mod:`.roles`), checkpoints and metrics."""
