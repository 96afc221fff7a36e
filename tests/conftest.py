"""One local Ray instance for the whole test session (2 CPUs), shared by every test that
runs a sweep in-process; tests that need their own cluster start real Ray processes."""
import os
import sys

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def cli(ray_session, capsys):
    """Run ``lksweep ARGS`` in-process on the session's Ray instance; returns (code, out, err)."""
    from sweeps.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


PYTHON = sys.executable
