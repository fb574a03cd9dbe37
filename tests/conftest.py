"""Shared fixtures: a local S3 endpoint (moto on 127.0.0.1), a read-only HTTP server, and a one-node Slurm
cluster on this host (tests/slurm_cluster.py; skipped with one line where Slurm is not installed)."""

import functools
import http.server
import logging
import os
import shutil
import tempfile
import threading

import pytest

# fsspec keeps its HTTP filesystem (and aiohttp session) cached until the interpreter exits, when
# aiohttp logs "Unclosed client session" through asyncio's logger: harmless, and not our code.
logging.getLogger("asyncio").setLevel(logging.CRITICAL)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """``--dist loadgroup`` sends the tests of one ``xdist_group`` to one worker by a suffix ``@GROUP`` on their
    node ids. pytest-xdist 3.8 writes it where pytest 9.2 no longer reads a node id (``_nodeid``; pytest reads
    ``_id``), so without this the groups were silently spread over the workers like ungrouped tests (two Slurm
    clusters, module fixtures made on both workers). Where the id has its suffix already, nothing changes."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                 for mark in item.iter_markers("xdist_group")}
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            item._id = type(item._id).parse(item.nodeid + suffix)


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def slurm():
    """A one-node Slurm (slurmctld, slurmd, munged) started for this session; yields its client environment
    (``SLURM_CONF``). Its folder is new in /tmp (munged wants a socket folder every user may enter, which
    pytest's base folder is not); its daemons are stopped by pid at the end and the folder removed."""
    from slurm_cluster import HOW_TO_ENABLE, SlurmCluster, missing

    reason = missing()
    if reason:
        pytest.skip(f"Slurm tests skipped: {reason}; to run them, {HOW_TO_ENABLE}")
    folder = tempfile.mkdtemp(prefix="alfine-slurm-")
    cluster = SlurmCluster(folder, cpus=max(4, os.cpu_count() or 1)).start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def s3_bucket(s3_server, monkeypatch, request):
    """A fresh bucket; endpoint and credentials are set in the environment, as a user would."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    name = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    fs = s3fs.S3FileSystem()
    fs.mkdir(name)
    yield name
    fs.rm(name, recursive=True)
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory) -> dict:
    """A run (inference_helpers.make_run: checkpoints 5 and 10) with checkpoint 10 exported with the architecture's
    input shape (``fixed``) and checkpoint 5 with dynamic axes (``dynamic``). Torch's ONNX exporter takes seconds
    a model, so the modules reading these (tests only read them) share one export: they are in the xdist group
    inference_helpers.ONNX_MODELS."""
    from inference_helpers import make_run

    from alfine.jobs.export import export_model

    root = tmp_path_factory.mktemp("onnx-models")
    run = make_run(root)
    export_model(run, 10, str(root / "fixed" / "model.onnx"))
    export_model(run, 5, str(root / "dynamic" / "model.onnx"), dynamic=True)
    return {"root": root, "run": run, "fixed": str(root / "fixed" / "model.onnx"),
            "dynamic": str(root / "dynamic" / "model.onnx")}


@pytest.fixture
def http_root(tmp_path):
    """A directory served read-only over HTTP on 127.0.0.1; yields (directory, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def _no_alfine_environment(monkeypatch):
    """Tests start without ALFINE_* variables from the calling shell."""
    for name in list(os.environ):
        if name.startswith("ALFINE_"):
            monkeypatch.delenv(name)
