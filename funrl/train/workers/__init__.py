"""The Ray actors of one GRPO step, one module per role.

Each actor class is plain Python; :mod:`funrl.train.workers.group` makes it a Ray actor with
the resources and placement bundle its role has in config. Every actor records its phases with a
:class:`funrl.profiling.SpanRecorder` and hands them over through ``drain_spans``.
"""
