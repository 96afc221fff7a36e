"""One local Ray instance for the whole test session (2 CPUs), shared by every test that
runs a sweep in-process; tests that need their own cluster start real Ray processes."""
import os
import socket

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


class S3:
    """A moto S3 server on 127.0.0.1 with a bucket; ``requests`` lists every request it got
    as (method, path, query)."""

    bucket = "lksweep-results"

    def __init__(self):
        import boto3
        from moto.server import ThreadedMotoServer

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.endpoint = f"127.0.0.1:{port}"
        self.requests = []
        app = self.server._server.app

        def counting(environ, start_response):
            self.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", "")))
            return app(environ, start_response)

        self.server._server.app = counting
        boto3.client("s3", endpoint_url=f"http://{self.endpoint}").create_bucket(Bucket=self.bucket)

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}?endpoint_override={self.endpoint}&scheme=http&region=us-east-1"


@pytest.fixture(scope="session")
def s3():
    """A moto S3 server on 127.0.0.1 (see :class:`S3`), and credentials for it."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    server = S3()
    yield server
    server.server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
