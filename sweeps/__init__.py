"""The sweep engine: specs, settings, shard planning, the Ray runner, the Parquet store and the
CLI; the jobs it runs live in ``sweeps.jobs``. See ARCHITECTURE.md for the layers and the data
flow."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lksweep")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
