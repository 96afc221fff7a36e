"""One local Ray instance for the whole test session (2 CPUs), shared by every test that
runs a sweep in-process; tests that need their own cluster start real Ray processes."""
import os

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


@pytest.fixture(scope="session")
def disc_dir(ray_session, tmp_path_factory):
    """A small real discrepancy sweep, shared by the analysis and report tests."""
    from . import analysis_fixtures

    out = tmp_path_factory.mktemp("disc")
    analysis_fixtures.real_discrepancy(out)
    return str(out)
