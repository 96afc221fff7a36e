"""Connecting to Ray: a fresh local instance, or an existing cluster checked first; and the
executor the runner submits its tasks to."""
import contextlib
import logging
import os
import signal
import socket
import sys
from typing import Any, Dict, List, Optional, Tuple

from .errors import SweepError, UsageError, shown
from .executor import Executor
from .job import Job
from .task import Output, Task, run

# What a Ray server (GCS or Ray Client, both gRPC) answers to an HTTP/2 connection preface:
# a SETTINGS frame. Anything else that listens on the port is not Ray.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
PROBE_S = 2.0


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
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or not _host_name(host):
        raise UsageError(f"{source}: expected HOST:PORT (a host name or IP address, a port from 1 to 65535; e.g. "
                         f"127.0.0.1:6379) or ray://HOST:PORT, got {shown(address)}")
    why = _not_ray(host, int(port))
    if why:
        raise UsageError(f"{source}: no Ray cluster answers at {hostport} ({why}); start one with "
                         f"`ray start --head` or `ray up cluster.yaml`, or omit {source} for a local instance")
    return address


def _host_name(host: str) -> bool:
    """Whether ``host`` can be looked up: an IP address, or a DNS name of at most 253
    characters in labels of 1 to 63 (a longer one fails inside the resolver's encoding)."""
    host = host.strip("[]")
    if ":" in host:   # an IPv6 address
        return all(c in "0123456789abcdefABCDEF:." for c in host)
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(0 < len(label) <= 63 and label.isascii() for label in labels)


def _not_ray(host: str, port: int) -> str:
    """Why nothing Ray-like answers at host:port within PROBE_S seconds ("" when it does)."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_S) as s:
            s.settimeout(PROBE_S)
            s.sendall(HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = s.recv(9 - len(head))
                if not chunk:
                    return "something listens there but closed the connection: not a Ray server"
                head += chunk
    except TimeoutError:
        return f"something listens there but did not answer as Ray does within {PROBE_S:g} s"
    except OSError as e:
        return e.strerror or str(e)
    return "" if head[3] == 4 else "something listens there but does not speak Ray's protocol (gRPC)"


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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (what `ray job stop` and schedulers send): stop submitting, keep what
    finished, say how to resume. ``exit_code`` is 128 + the signal's number."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


@contextlib.contextmanager
def interrupts():
    """SIGINT and SIGTERM raise :class:`Interrupted` inside this block (Ray's own SIGTERM
    handler aborts the process); handlers are restored after. Call again after ray.init."""
    def raise_(signum, frame):
        raise Interrupted(signum)

    saved = {sig: signal.signal(sig, raise_) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class RayExecutor(Executor):
    """Runs :class:`sweeps.task.Task` s as Ray tasks (``with`` starts or joins Ray and stops
    what it started); the progress bar goes to the terminal, which Ray's own output leaves
    (``console_to``)."""

    def __init__(self, address: Optional[str], max_workers: Optional[int], log_path: str):
        self.address, self.max_workers, self.log_path = address, max_workers, log_path
        self._jobs: Dict[str, Any] = {}

    def __enter__(self):
        with contextlib.ExitStack() as stack:
            self._console = stack.enter_context(console_to(self.log_path))
            self.ray, started = start_ray(self.address, self.max_workers if self.address is None else None)
            if started:
                stack.callback(self.ray.shutdown)
            stack.enter_context(interrupts())   # after ray.init, which installs its own handlers
            self._remote = self.ray.remote(run).options(num_cpus=1, max_retries=3)
            cpus = int(self.ray.cluster_resources().get("CPU", 1))
            self.capacity = self.max_workers or cpus
            self.node_memory = max((n.get("Resources", {}).get("memory", 0) for n in self.ray.nodes() if n.get("Alive")),
                                   default=0) or None
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)

    @property
    def console(self):
        return self._console

    def submit(self, job: Job, task: Task):
        if job.name not in self._jobs:
            self._jobs[job.name] = self.ray.put(job)
        return self._remote.remote(self._jobs[job.name], task)

    def wait(self, handles: List, timeout: float) -> List:
        if not handles:
            return []
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(handles, num_returns=len(handles), timeout=0)
        return ready

    def result(self, handle, groups: List[str]) -> Tuple[List[Output], float]:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayError as e:
            names = ", ".join(sorted(set(groups))[:5]) + (" ..." if len(set(groups)) > 5 else "")
            raise SweepError(f"a task of group(s) {names} failed: {str(e).strip().splitlines()[-1]}") from e
