"""Sweep specs, shard planning, the Ray runner, the Parquet store and the CLI."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lksweep")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
