"""The ``prsm`` command line, the demo, trace replay, the worker's HTTP API as the CLI reads
it, and a worker run as a child process.

Each module has its own ``__all__``; import names from the module.
"""

__all__ = ["control_commands", "demo", "main", "replay", "worker_api", "worker_process"]
