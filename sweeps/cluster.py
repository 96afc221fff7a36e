"""Connecting to Ray: a fresh local instance, or an existing cluster checked first."""
import contextlib
import logging
import os
import socket
import sys
from typing import Optional

from .errors import SweepError, UsageError


def resolve_address(address: Optional[str]) -> Optional[str]:
    """The cluster address to join (``--address``, else ``RAY_ADDRESS``), or None for a
    fresh local instance. A host:port address must answer within a second."""
    source = "--address"
    if not address:
        address, source = os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS"
    if not address or address == "local":
        return None
    if address == "auto":
        address = _running_cluster(source)
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"{source}: expected HOST:PORT (e.g. 127.0.0.1:6379) or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=1.0).close()
    except OSError as e:
        raise UsageError(f"{source}: no Ray cluster answers at {hostport} ({e.strerror or e}); start one with "
                         f"`ray start --head` or `ray up cluster.yaml`, or omit {source} for a local instance") from None
    return address


def _running_cluster(source: str) -> str:
    """The address of the cluster `ray start` last started on this machine (what Ray's own
    ``address="auto"`` looks up)."""
    from ray._private.services import get_ray_address_from_environment

    try:
        found = get_ray_address_from_environment("auto", None)
    except (ConnectionError, RuntimeError, ValueError):
        found = None
    if not found:
        raise UsageError(f"{source}: 'auto' found no running Ray cluster on this machine; start one with "
                         f"`ray start --head`, give HOST:PORT, or omit {source} for a local instance")
    return found


@contextlib.contextmanager
def console_to(log_path: str):
    """Send everything written to file descriptors 1 and 2 (Ray's console chatter,
    including its C++ components) to ``log_path``; yields a file on the real stderr."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    saved_out, saved_err = os.dup(1), os.dup(2)
    real_err = os.fdopen(os.dup(saved_err), "w", buffering=1)
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield real_err
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        real_err.close()


def start_ray(address: Optional[str], num_cpus: Optional[int]):
    """Join ``address`` or start a local instance with ``num_cpus`` (default: every core).

    Returns (ray, started): ``started`` is False when this process was already connected
    (a notebook or a test session), in which case the caller must not shut Ray down."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return ray, False
    common = dict(log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address is None:
            # "local" forces a new instance: a plain init() would try to join a stale cluster
            # left behind by an earlier `ray start`.
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **common)
        else:
            ray.init(address=address, **common)
    except (ConnectionError, RuntimeError, TimeoutError) as e:
        where = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
        raise SweepError(f"could not {where}: {str(e).strip().splitlines()[0]}") from None
    return ray, True
