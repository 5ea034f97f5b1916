"""The function served over gRPC by its console script and called as `crossplane render` calls it (`--insecure`,
requirements fetched and the function called again until they are stable), plus the serving CLI itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from crossplane.function.proto.v1beta1 import run_function_pb2 as fnv1beta1
from crossplane.function.proto.v1beta1 import run_function_pb2_grpc as grpcv1beta1

from tests.function_cases import kube
from tests.function_cases.render import Rendered, render
from tests.servers import CertificateAuthority, free_port

FUNCTION = shutil.which("function", path=os.path.dirname(sys.executable)) or "function"
RENDER = kube.ROOT / "examples" / "render"
KIND_OF = {
    "instance": "DatabaseInstance",
    "database": "Database",
    "user": "DatabaseUser",
    "grant": "DatabaseGrant",
}


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [FUNCTION, "--address", address, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, address


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[grpcv1.FunctionRunnerServiceStub, grpc.Channel, list[str]]]:
    proc, address = _start("--insecure")
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
    except grpc.FutureTimeoutError:
        pytest.fail("the function did not start: " + _stop(proc))
    logs: list[str] = []
    yield grpcv1.FunctionRunnerServiceStub(channel), channel, logs
    channel.close()
    logs.append(_stop(proc))


def _set(name: str) -> dict[str, list[dict[str, Any]]]:
    return {p.name: kube.load_yaml(p) for p in sorted((RENDER / name).glob("*.yaml"))}


def _required(files: dict[str, list[dict[str, Any]]], xr_file: str) -> list[dict[str, Any]]:
    """An XR's required resources: its own file in a set of namespaced XRs, else the set's."""
    return files.get(f"required-{xr_file}.yaml") or files["required.yaml"]


def _render_file(
    stub: grpcv1.FunctionRunnerServiceStub,
    set_name: str,
    xr_file: str,
    observed: bool,
    read_pods: bool = False,
) -> Rendered:
    files = _set(set_name)
    [xr] = files[f"{xr_file}.yaml"]
    step_input = kube.composition_input(KIND_OF[xr_file])
    return render(
        stub.RunFunction,
        xr,
        kube.reading_pods(step_input) if read_pods else step_input,
        files[f"observed-{xr_file}.yaml"] if observed else [],
        _required(files, xr_file),
    )


CONVERGED = [
    ("postgres", "instance", "instance"),
    ("postgres", "database", "database"),
    ("postgres", "user", "user"),
    ("mariadb", "instance", "instance"),
    ("mariadb", "database", "database"),
    ("mariadb", "user", "user"),
    ("mariadb", "grant", "grant"),
    ("namespaced-postgres", "instance", "instance"),
    ("namespaced-postgres", "database", "database"),
    ("namespaced-postgres", "user", "user"),
]


@pytest.mark.parametrize(
    ("set_name", "xr_file", "facts"), CONVERGED, ids=[f"{s}-{x}" for s, x, _ in CONVERGED]
)
def test_render_fixtures_converge_to_ready(served: Any, set_name: str, xr_file: str, facts: str) -> None:
    """Exactly the files in examples/render, fed as `crossplane render` feeds them, yield Ready: with the shipped
    Composition from the Job alone (no facts), and with `status.readPods: true` with the facts of the Pod."""
    stub = served[0]
    files = _set(set_name)
    default = _render_file(stub, set_name, xr_file, observed=True)
    assert default.ready == "True", default.xr["status"]
    assert default.xr["status"]["phase"] == "Ready" and facts not in default.xr["status"]
    assert "pods" not in default.response.requirements.resources, "Pods never asked for"
    assert not any("pods" in r.required_resources for r in default.requests)
    out = _render_file(stub, set_name, xr_file, observed=True, read_pods=True)
    status = out.xr["status"]
    assert out.ready == "True", (status, "stale fixtures? python -m tests.function_cases.render_examples")
    assert status["phase"] == "Ready"
    assert out.condition("Provisioned")["status"] == "True"
    # The facts come from the fixture Pod's termination message.
    pod_results = [
        p["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
        for p in _required(files, xr_file)
        if p["kind"] == "Pod"
    ]
    assert status[facts] and any('"observed":' in m for m in pod_results)
    for same in ("job", "lastAppliedHash", "lastSuccessfulTime"):
        assert status[same] == default.xr["status"][same]
    assert status["lastAppliedHash"]
    assert out.calls <= 4, "requirements stabilise quickly"
    observed_job = next(o for o in files[f"observed-{xr_file}.yaml"] if o["kind"] == "Job")
    assert (
        status["lastAppliedHash"]
        == observed_job["metadata"]["annotations"]["dbops.dbprovision.io/state-hash"]
    )
    if xr_file == "user":
        observed_secret = next(o for o in files[f"observed-{xr_file}.yaml"] if o["kind"] == "Secret")
        assert (
            kube.secret_data(out.composed["credentials"])["password"]
            == kube.secret_data(observed_secret)["password"]
        )
    if xr_file != "instance":
        assert out.condition("InstanceReady")["status"] == "True"
    else:
        assert out.condition("Connected")["status"] == "True"


def test_render_xr_files_are_the_quickstart_claims() -> None:
    claims = {d["metadata"]["name"]: d for d in kube.load_yaml(kube.ROOT / "examples" / "quickstart.yaml")}
    for xr_file, claim_name in (
        ("instance", "postgres-server"),
        ("database", "myapp-db"),
        ("user", "myapp-user"),
    ):
        [xr] = kube.load_yaml(RENDER / "postgres" / f"{xr_file}.yaml")
        spec = {k: v for k, v in xr["spec"].items() if k not in ("claimRef", "compositionRef")}
        assert spec == claims[claim_name]["spec"]
        assert xr["metadata"]["labels"]["crossplane.io/claim-name"] == claim_name


def test_quickstart_over_grpc_from_nothing_to_ready(served: Any) -> None:
    """The reconcile loop by hand: render, 'apply' the Secret, render, run the Job, feed it back, render."""
    stub = served[0]
    files = _set("postgres")
    [xr] = files["user.yaml"]
    claims = [d for d in files["required.yaml"] if d["kind"] != "Pod"]
    inp = kube.composition_input("DatabaseUser")
    first = render(stub.RunFunction, xr, inp, [], claims)
    assert first.xr["status"]["phase"] == "Pending" and first.ready == "False"
    assert set(first.composed) == {"credentials"}
    assert first.calls == 3, "asks for the claims, then the instance's admin Secret: requirements stable"
    assert (
        first.requests[1].required_resources["instance"].items[0].resource["metadata"]["name"]
        == "postgres-server"
    )
    secret = kube.observed(first.composed["credentials"], "credentials")
    second = render(stub.RunFunction, xr, inp, [secret], claims)
    [(key, job)] = ((k, v) for k, v in second.composed.items() if v["kind"] == "Job")
    assert second.xr["status"]["phase"] == "Provisioning"
    assert kube.secret_data(second.composed["credentials"]) == kube.secret_data(first.composed["credentials"])
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    done = kube.job_complete(kube.observed(job, key), finished)
    pod = kube.pod(
        done,
        0,
        kube.worker_result("DatabaseUser", observed_facts={"username": "myapp", "login": True}),
        finished,
    )
    third = render(stub.RunFunction, xr, inp, [secret, done], [*claims, pod])
    assert third.ready == "True"
    assert third.xr["status"]["phase"] == "Ready"
    assert "user" not in third.xr["status"], "the shipped Composition does not read Pods: no facts"
    assert third.xr["status"]["job"] == job["metadata"]["name"]
    opted_in = render(stub.RunFunction, xr, kube.reading_pods(inp), [secret, done], [*claims, pod])
    assert opted_in.ready == "True"
    assert opted_in.xr["status"]["user"] == {"username": "myapp", "login": True}


def test_unready_instance_over_grpc_is_pending_without_a_job(served: Any) -> None:
    stub = served[0]
    files = _set("postgres")
    [xr] = files["database.yaml"]
    claims = [
        {**d, "status": {"phase": "Provisioning"}}
        for d in files["required.yaml"]
        if d["kind"] == "DatabaseInstance"
    ]
    out = render(stub.RunFunction, xr, kube.composition_input("Database"), [], claims)
    assert out.xr["status"]["phase"] == "Pending"
    assert not out.composed
    assert out.condition("InstanceReady")["status"] == "False"


def test_v1beta1_is_served_too(served: Any) -> None:
    channel = served[1]
    [xr] = _set("postgres")["instance.yaml"]
    req = fnv1beta1.RunFunctionRequest()
    req.meta.tag = "beta"
    req.observed.composite.resource.update(xr)
    rsp = grpcv1beta1.FunctionRunnerServiceStub(channel).RunFunction(req, timeout=10)
    assert rsp.meta.tag == "beta"
    assert any(v.resource["kind"] == "Job" for v in rsp.desired.resources.values())


def test_garbage_never_raises_over_grpc(served: Any) -> None:
    stub = served[0]
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.update(
        {"kind": "XDatabaseUser", "spec": {"username": 5, "instanceRef": []}}
    )
    req.input.update({"worker": "nope"})
    rsp = stub.RunFunction(req, timeout=10)
    assert rsp.results and rsp.results[0].severity == fnv1.SEVERITY_FATAL


def test_logs_are_json_with_the_request_tag_and_no_secrets(served: Any) -> None:
    stub = served[0]
    files = _set("postgres")
    [xr] = files["user.yaml"]
    req = kube.request(
        xr,
        {"credentials": files["observed-user.yaml"][0]},
        {"instance": files["required.yaml"][:1]},
        tag="tag-4711",
    )
    stub.RunFunction(req, timeout=10)
    password = kube.secret_data(files["observed-user.yaml"][0])["password"]
    # Stop a fresh server to read its logs deterministically.
    proc, address = _start("--insecure")
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=30)
    grpcv1.FunctionRunnerServiceStub(channel).RunFunction(req, timeout=10)
    channel.close()
    out = _stop(proc)
    import json

    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    composed = [line for line in lines if line.get("msg") == "composed"]
    assert composed and composed[0]["tag"] == "tag-4711" and composed[0]["level"] == "info"
    assert password not in out


# --- the CLI -----------------------------------------------------------------------------------------------------


def test_cli_refuses_to_serve_without_credentials_or_insecure() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TLS_SERVER_CERTS_DIR", "INSECURE")}
    proc = subprocess.run(
        [FUNCTION, "--address", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert proc.returncode != 0
    assert "--tls-certs-dir" in proc.stderr


def test_cli_fails_on_unreadable_certificates(tmp_path: Path) -> None:
    proc = subprocess.run(
        [FUNCTION, "--address", f"127.0.0.1:{free_port()}", "--tls-certs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert "tls.crt" in proc.stderr


def test_cli_fails_when_the_address_is_taken(served: Any) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = subprocess.run(
            [FUNCTION, "--insecure", "--address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert proc.returncode != 0
    assert "cannot serve" in proc.stderr


def test_cli_serves_mutual_tls(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    server = ca.issue("tls", "function-dbops", hosts=("127.0.0.1", "localhost"), directory=tmp_path / "certs")
    client = ca.issue("client", "crossplane", client=True, directory=tmp_path / "client")
    certs = tmp_path / "certs"
    shutil.copy(ca.ca_path, certs / "ca.crt")
    proc, address = _start("--tls-certs-dir", str(certs))
    try:
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(ca.ca_path).read_bytes(),
            private_key=Path(client.key).read_bytes(),
            certificate_chain=Path(client.cert).read_bytes(),
        )
        with grpc.secure_channel(address, creds) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            req = kube.request(kube.load_yaml(RENDER / "postgres" / "instance.yaml")[0])
            rsp = grpcv1.FunctionRunnerServiceStub(channel).RunFunction(req, timeout=10)
            assert any(v.resource["kind"] == "Job" for v in rsp.desired.resources.values())
        # Without a client certificate the server refuses the call.
        anonymous = grpc.ssl_channel_credentials(root_certificates=Path(ca.ca_path).read_bytes())
        with grpc.secure_channel(address, anonymous) as channel, pytest.raises(grpc.RpcError):
            grpcv1.FunctionRunnerServiceStub(channel).RunFunction(req, timeout=5)
        assert server.cert
    finally:
        _stop(proc)
