"""A real control plane on 127.0.0.1, as local processes: etcd, kube-apiserver, kube-controller-manager, Crossplane
core and its RBAC manager, an OCI registry holding the two dbops packages, the dbops function (mTLS), and the
process node that runs the Jobs' Pods. Everything stops on `stop()` (or leaving the `with` block).

    with ControlPlane.start(tools_dir()) as cp:
        cp.install()          # docs/packages.md, "Install": deploy/function.yaml, the Configuration, deploy/...
        cp.kube.apply(...)    # claims

Packages: `crossplane xpkg build` builds both packages from package/ and apis/ and `crossplane xpkg push` puts
them into a local registry (go-containerregistry's, in memory, plain HTTP on 127.0.0.1 as that library does for
loopback registries). An ImageConfig rewrites `ghcr.io/dbprovision/` to that registry, so deploy/function.yaml and
the Configuration apply exactly as written and Crossplane resolves the Configuration's dependency by itself.
Crossplane runs the Function with the External package runtime: it never starts a Deployment, and this module
plays the runtime's part by setting each active FunctionRevision's `status.endpoint` to the function served here.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tools.cluster import pki
from tools.cluster.kube import Credentials, Kube, Obj, load_yaml, wait
from tools.cluster.procs import ProcessGroup
from tools.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NAMESPACE = "crossplane-system"
REGISTRY_PREFIX = "ghcr.io/dbprovision/"  # where deploy/function.yaml and apis/crossplane.yaml point
PACKAGE_VERSION = "v0.1.0"
FUNCTION_TLS_SECRET = "function-dbops-tls-server"  # noqa: S105 (a Secret's name)
RUNTIME_HEALTHY = {
    "type": "RuntimeHealthy",
    "status": "True",
    "reason": "HealthyPackageRevision",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}
CROSSPLANE_USER = f"system:serviceaccount:{NAMESPACE}:crossplane"
CROSSPLANE_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}")
KCM_CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "ttl-after-finished-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",  # Crossplane's ClusterRole is an aggregation (crossplane-rbac.yaml)
)
REQUIRED_TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "crossplane-core",
    "crossplane",
    "registry",
)


def tools_dir() -> Path:
    """The version-keyed tool cache `tools/cluster/build-tools.sh` fills (DBOPS_TOOLS_DIR overrides it)."""
    if os.environ.get("DBOPS_TOOLS_DIR"):
        return Path(os.environ["DBOPS_TOOLS_DIR"])
    out = subprocess.run(
        ["bash", str(HERE / "build-tools.sh"), "path"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def missing_tools(tools: Path) -> list[str]:
    return [name for name in REQUIRED_TOOLS if not os.access(tools / "bin" / name, os.X_OK)]


def _scratch_root() -> str | None:
    """etcd's data and everything else on tmpfs when there is one: nothing here needs to survive."""
    shm = Path("/dev/shm")  # noqa: S108 (tmpfs for throwaway data; the directory below is private)
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@dataclass
class ControlPlane:
    tools: Path
    base: Path
    procs: ProcessGroup
    admin: Kube
    kube_env: dict[str, str]
    ca: pki.Authority
    registry: str = ""
    function_address: str = ""
    node: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    _runtime_stop: threading.Event = field(default_factory=threading.Event)
    _runtime_thread: threading.Thread | None = None

    # --- start --------------------------------------------------------------------------------------------------

    @classmethod
    def start(
        cls, tools: Path, node: bool = True, function: bool = True, step_input: Obj | None = None
    ) -> ControlPlane:
        """`step_input`: merged into every Composition's function step Input before the Configuration is built
        (what a platform team does to change the defaults)."""
        missing = missing_tools(tools)
        if missing:
            raise RuntimeError(
                f"missing {', '.join(missing)} in {tools}/bin: run tools/cluster/build-tools.sh all"
            )
        base = Path(tempfile.mkdtemp(prefix="dbops-cp-", dir=_scratch_root()))
        (base / "logs").mkdir()
        procs = ProcessGroup(base / "logs")
        try:
            cp = cls._boot(tools, base, procs)
            cp.start_crossplane()
            cp.start_registry(step_input)
            if function:
                cp.start_function()
            if node:
                cp.start_node()
            return cp
        except BaseException:
            procs.stop_all()
            if not os.environ.get("DBOPS_KEEP_CONTROL_PLANE"):
                shutil.rmtree(base, ignore_errors=True)
            raise

    @classmethod
    def _boot(cls, tools: Path, base: Path, procs: ProcessGroup) -> ControlPlane:
        t0 = time.monotonic()
        bin_ = tools / "bin"
        ca = pki.Authority.create(base / "pki", "dbops test control plane")
        sa = pki.service_account_keys(base / "pki")
        api_port = free_port()
        server = f"https://127.0.0.1:{api_port}"
        serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            hosts=(
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "10.0.0.1",
            ),
            server=True,
        )
        admin_pair = ca.issue("admin", "dbops-admin", groups=("system:masters",), client=True)
        admin_creds = Credentials(server, ca.ca_path, admin_pair.cert, admin_pair.key)
        (base / "admin.kubeconfig").write_text(admin_creds.kubeconfig("admin"))

        etcd_port, peer_port = free_port(), free_port()
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        etcd = procs.start(
            "etcd",
            [
                str(bin_ / "etcd"),
                "--name=dbops",
                f"--data-dir={base / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=dbops={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        procs.wait_until(etcd, lambda: _http_ok(f"{etcd_url}/health"), 60, "etcd health")
        apiserver = procs.start(
            "kube-apiserver",
            [
                str(bin_ / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.ca_path}",
                "--authorization-mode=RBAC",
                # The defaults, ValidatingAdmissionPolicy among them; no kubelet, so no Node authorizer.
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                # A loopback address cannot be the kubernetes Service's endpoint; nothing here needs one.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                # An audit log of what the API server refuses Crossplane (tests read it: a refused watch of Pods).
                f"--audit-policy-file={_audit_policy(base)}",
                f"--audit-log-path={base / 'logs' / 'audit.log'}",
            ],
        )
        admin = Kube(admin_creds)
        procs.wait_until(apiserver, admin.healthy, 120, "API server /readyz")
        kcm_port = free_port()
        kcm = procs.start(
            "kube-controller-manager",
            [
                str(bin_ / "kube-controller-manager"),
                f"--kubeconfig={base / 'admin.kubeconfig'}",
                f"--authentication-kubeconfig={base / 'admin.kubeconfig'}",
                f"--authorization-kubeconfig={base / 'admin.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--controllers={','.join(KCM_CONTROLLERS)}",
                f"--root-ca-file={ca.ca_path}",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )
        procs.wait_until(kcm, lambda: _listening(kcm_port), 60, "controller manager port")
        procs.check_running()
        cp = cls(
            tools=tools,
            base=base,
            procs=procs,
            admin=admin,
            kube_env={"KUBECONFIG": str(base / "admin.kubeconfig")},
            ca=ca,
        )
        cp.timings["kubernetes"] = time.monotonic() - t0
        return cp

    def start_crossplane(self) -> None:
        """`core init` then `core start` as the ServiceAccount crossplane-system/crossplane (by client certificate,
        so RBAC applies), and the RBAC manager that grants Crossplane access to each XRD's kinds."""
        t0 = time.monotonic()
        bin_ = self.tools / "bin"
        self.admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        self.admin.apply_all(load_yaml(HERE / "crossplane-rbac.yaml"))
        ca = self.ca
        pair = ca.issue("crossplane", CROSSPLANE_USER, groups=CROSSPLANE_GROUPS, client=True)
        creds = Credentials(self.admin.creds.server, ca.ca_path, pair.cert, pair.key)
        kubeconfig = self.base / "crossplane.kubeconfig"
        kubeconfig.write_text(creds.kubeconfig("crossplane"))
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.base), "KUBECONFIG": str(kubeconfig)}
        # Resolved: the initializer walks the directory without following a symlink to it.
        crds = (self.tools / "crossplane-crds").resolve()
        # The aggregated ClusterRole must hold the base rules before Crossplane acts under it.
        wait(
            lambda: self._aggregated("crossplane", "customresourcedefinitions"), 60, "crossplane ClusterRole"
        )
        # Settings by environment, as the Helm chart passes them (the flag names are Kong's spelling of them).
        init_env = {
            **env,
            "CRDS_PATH": str(crds),
            "ENABLE_WEBHOOKS": "false",
            "TLS_CA_SECRET_NAME": "crossplane-root-ca",
            "TLS_CLIENT_SECRET_NAME": "crossplane-tls-client",
            "POD_NAMESPACE": NAMESPACE,
            "POD_SERVICE_ACCOUNT": "crossplane",
        }
        # `core init` applies the CRDs and then objects of their kinds without waiting for the CRDs to be served;
        # in a cluster its init container fails and the kubelet restarts it. So here.
        log = self.base / "logs" / "crossplane-init.log"
        for _ in range(30):
            init = subprocess.run(
                [str(bin_ / "crossplane-core"), "core", "init"],
                env=init_env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            with open(log, "a") as out:
                out.write(init.stdout + init.stderr)
            if init.returncode == 0:
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"crossplane core init failed:\n{init.stdout[-3000:]}{init.stderr[-3000:]}")
        client_dir = self.base / "crossplane-tls-client"
        secret = self.admin.get("v1", "Secret", "crossplane-tls-client", NAMESPACE) or {}
        for key in ("ca.crt", "tls.crt", "tls.key"):
            _write_private(client_dir / key, base64.b64decode(secret["data"][key]))
        rbac_env = {**env, "KUBECONFIG": str(self.base / "admin.kubeconfig")}
        self.procs.start(
            "crossplane-rbac-manager", [str(bin_ / "crossplane-core"), "rbac", "start"], env=rbac_env
        )
        health = free_port()
        (self.base / "xpkg-cache").mkdir()  # an emptyDir in the Helm chart
        core = self.procs.start(
            "crossplane",
            [
                str(bin_ / "crossplane-core"),
                "core",
                "start",
                "--webhook-enabled=false",
                "--package-runtime=External",
                f"--cache-dir={self.base / 'xpkg-cache'}",
                f"--tls-client-certs-dir={client_dir}",
                f"--metrics-port={free_port()}",
                f"--health-probe-port={health}",
            ],
            env={**env, "POD_NAMESPACE": NAMESPACE, "POD_SERVICE_ACCOUNT": "crossplane"},
        )
        self.procs.wait_until(
            core, lambda: _http_ok(f"http://127.0.0.1:{health}/healthz"), 120, "Crossplane health"
        )
        self.timings["crossplane"] = time.monotonic() - t0

    def _aggregated(self, role: str, resource: str) -> bool:
        found = self.admin.get("rbac.authorization.k8s.io/v1", "ClusterRole", role) or {}
        return any(resource in rule.get("resources", []) for rule in found.get("rules") or [])

    def start_registry(self, step_input: Obj | None = None) -> None:
        """A local OCI registry with both packages, built by `crossplane xpkg build` and pushed by `xpkg push`."""
        t0 = time.monotonic()
        bin_ = self.tools / "bin"
        port = free_port()
        reg = self.procs.start("registry", [str(bin_ / "registry"), f"-port={port}"])
        self.procs.wait_until(reg, lambda: _http_ok(f"http://127.0.0.1:{port}/v2/"), 30, "registry")
        self.registry = f"127.0.0.1:{port}"
        build = self.base / "xpkg"
        build.mkdir()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.base), "DOCKER_CONFIG": str(self.base / "docker")}
        apis = ROOT / "apis" if step_input is None else _apis_with_input(self.base / "apis", step_input)
        ns_apis = (
            ROOT / "apis-namespaced"
            if step_input is None
            else _apis_with_input(self.base / "apis-namespaced", step_input, ROOT / "apis-namespaced")
        )
        # The namespaced Configuration (docs/packages.md) is pushed too; install(namespaced=True) installs it.
        packages = (
            ("function-dbops", ["--package-root", str(ROOT / "package")]),
            ("dbops", ["--package-root", str(apis), "--examples-root", str(ROOT / "examples")]),
            (
                "dbops-namespaced",
                ["--package-root", str(ns_apis), "--examples-root", str(ROOT / "examples/namespaced")],
            ),
        )
        for name, args in packages:
            out = build / f"{name}.xpkg"
            _run([str(bin_ / "crossplane"), "xpkg", "build", *args, f"--package-file={out}"], env)
            _run(
                [
                    str(bin_ / "crossplane"),
                    "xpkg",
                    "push",
                    "-f",
                    str(out),
                    f"{self.registry}/dbprovision/{name}:{PACKAGE_VERSION}",
                ],
                env,
            )
        self.admin.wait_for_kind("pkg.crossplane.io/v1beta1", "ImageConfig")
        self.admin.apply(
            {
                "apiVersion": "pkg.crossplane.io/v1beta1",
                "kind": "ImageConfig",
                "metadata": {"name": "dbops-local-registry"},
                "spec": {
                    "matchImages": [{"type": "Prefix", "prefix": REGISTRY_PREFIX}],
                    "rewriteImage": {"prefix": f"{self.registry}/dbprovision/"},
                },
            }
        )
        self.timings["packages"] = time.monotonic() - t0

    def start_function(self) -> None:
        """The dbops function with mTLS: a serving certificate signed by Crossplane's root CA (which Crossplane's
        client certificate also chains to), and a thread that points active FunctionRevisions at it."""
        root = self.admin.get("v1", "Secret", "crossplane-root-ca", NAMESPACE) or {}
        ca = pki.Authority.load(
            base64.b64decode(root["data"]["tls.crt"]),
            base64.b64decode(root["data"]["tls.key"]),
            self.base / "function-tls",
        )
        pair = ca.issue("tls", "function-dbops", hosts=("127.0.0.1", "localhost"), server=True)
        # The SDK reads tls.crt, tls.key and ca.crt from the directory.
        assert pair.cert.name == "tls.crt" and pair.key.name == "tls.key"
        port = free_port()
        exe = shutil.which("function", path=os.path.dirname(sys.executable)) or "function"
        fn = self.procs.start(
            "function",
            [exe, f"--tls-certs-dir={self.base / 'function-tls'}", f"--address=127.0.0.1:{port}"],
            env={"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": str(self.base)},
        )
        self.procs.wait_until(fn, lambda: _listening(port), 60, "function port")
        # The Deployment runtime keeps the function's serving certificate in a Secret and names it in the
        # revision's status; Crossplane establishes the package's CRDs only once it has.
        self.admin.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": FUNCTION_TLS_SECRET, "namespace": NAMESPACE},
                "type": "kubernetes.io/tls",
                "data": {
                    name: base64.b64encode(path.read_bytes()).decode()
                    for name, path in (("tls.crt", pair.cert), ("tls.key", pair.key), ("ca.crt", ca.ca_path))
                },
            }
        )
        self.function_address = f"127.0.0.1:{port}"
        self._runtime_thread = threading.Thread(target=self._runtime, name="function-runtime", daemon=True)
        self._runtime_thread.start()

    def _runtime(self) -> None:
        """The External package runtime's part: every active FunctionRevision of function-dbops gets the local
        function's address as its endpoint (whatever the Function is named)."""
        while not self._runtime_stop.wait(0.5):
            with contextlib.suppress(Exception):
                for rev in self.admin.list("pkg.crossplane.io/v1", "FunctionRevision"):
                    image = rev.get("spec", {}).get("image", "")
                    if "function-dbops" not in image or rev["spec"].get("desiredState") != "Active":
                        continue
                    status = rev.get("status", {})
                    want: Obj = {
                        "endpoint": self.function_address,
                        "tlsServerSecretName": FUNCTION_TLS_SECRET,
                    }
                    conds = [c for c in status.get("conditions", []) if c.get("type") != "RuntimeHealthy"]
                    if not any(
                        c.get("type") == "RuntimeHealthy" and c.get("status") == "True"
                        for c in status.get("conditions", [])
                    ):
                        # The function process runs (start_function waited for it): the runtime is healthy.
                        want["conditions"] = [*conds, RUNTIME_HEALTHY]
                    if any(status.get(k) != v for k, v in want.items()):
                        self.admin.patch(
                            "pkg.crossplane.io/v1",
                            "FunctionRevision",
                            rev["metadata"]["name"],
                            {"status": want},
                            sub="status",
                        )

    def start_node(self) -> None:
        from tools.cluster.node import ProcessNode

        self.node = ProcessNode(self.admin, self.base / "node")
        self.node.start()

    # --- install (docs/packages.md) -----------------------------------------------------------------------------

    def install(
        self, function_first: bool = False, wait_healthy: bool = True, pod_rule: bool = False
    ) -> None:
        """docs/packages.md, "Install", step by step: deploy/function.yaml (optional), the Configuration,
        deploy/rbac.yaml and deploy/deletion-protection.yaml. `function_first=False` leaves the Function to the
        Configuration's dependency. `pod_rule`: also deploy/rbac-pods.yaml, the opt-in that goes with the step
        Input's `status.readPods: true` (`ControlPlane.start(step_input=READ_PODS)`)."""
        t0 = time.monotonic()
        self.admin.wait_for_kind("pkg.crossplane.io/v1", "Function")
        if function_first:
            self.admin.apply_all(load_yaml(ROOT / "deploy/function.yaml"))
        self.admin.apply(configuration())
        rbac = load_yaml(ROOT / "deploy/rbac.yaml")
        if pod_rule:
            rbac += load_yaml(ROOT / "deploy/rbac-pods.yaml")
        self.admin.apply_all([*rbac, *load_yaml(ROOT / "deploy/deletion-protection.yaml")])
        if wait_healthy:
            wait(lambda: self._package_healthy("Configuration", "dbops"), 300, "Configuration dbops Healthy")
            for name in self.function_names():
                wait(
                    functools.partial(self._package_healthy, "Function", name),
                    120,
                    f"Function {name} Healthy",
                )
            for kind in ("DatabaseInstance", "Database", "DatabaseUser", "DatabaseGrant"):
                self.admin.wait_for_kind("dbops.dbprovision.io/v1alpha1", kind, timeout=120)
        self.procs.check_running()
        self.timings["install"] = time.monotonic() - t0

    def install_namespaced(self) -> None:
        """The namespaced shape's Configuration (`dbops-namespaced`, beside `dbops`): Healthy, its four kinds served
        in ns.dbops.dbprovision.io. It depends on the same Function package, so no second Function appears."""
        t0 = time.monotonic()
        self.admin.apply(configuration("dbops-namespaced"))
        wait(
            lambda: self._package_healthy("Configuration", "dbops-namespaced"),
            300,
            "Configuration dbops-namespaced Healthy",
        )
        for kind in ("DatabaseInstance", "Database", "DatabaseUser", "DatabaseGrant"):
            self.admin.wait_for_kind("ns.dbops.dbprovision.io/v1alpha1", kind, timeout=120)
        self.timings["install namespaced"] = time.monotonic() - t0

    def function_names(self) -> list[str]:
        return sorted(f["metadata"]["name"] for f in self.admin.list("pkg.crossplane.io/v1", "Function"))

    def _package_healthy(self, kind: str, name: str) -> bool:
        pkg = self.admin.get("pkg.crossplane.io/v1", kind, name) or {}
        conds = {c["type"]: c["status"] for c in pkg.get("status", {}).get("conditions", [])}
        return conds.get("Installed") == "True" and conds.get("Healthy") == "True"

    # --- stop ---------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._runtime_stop.set()
        if self._runtime_thread is not None:
            self._runtime_thread.join(timeout=5)
        if self.node is not None:
            self.node.stop()
        self.procs.stop_all()
        if not os.environ.get("DBOPS_KEEP_CONTROL_PLANE"):
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def logs(self, name: str, lines: int = 60) -> str:
        path = self.base / "logs" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    users: ["system:serviceaccount:crossplane-system:crossplane"]
    resources: [{group: "", resources: ["pods"]}, {group: "dbops.dbprovision.io", resources: ["databaseusers"]}]
  - level: None
"""


def _audit_policy(base: Path) -> Path:
    """Crossplane's requests for Pods and DatabaseUser claims (a roleName grant lists those) only: enough to see a
    refusal, too little to cost anything."""
    path = base / "audit-policy.yaml"
    path.write_text(AUDIT_POLICY)
    return path


def refused(base: Path, user: str, resource: str) -> list[Obj]:
    """The audit log's requests of `user` for `resource` that the API server answered 403."""
    return [e for e in audited(base, user, resource) if e.get("responseStatus", {}).get("code") == 403]


def audited(base: Path, user: str, resource: str) -> list[Obj]:
    """The audit log's requests of `user` for `resource` (AUDIT_POLICY says which are logged)."""
    try:
        lines = (base / "logs" / "audit.log").read_text(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if (
                event.get("user", {}).get("username") == user
                and event.get("objectRef", {}).get("resource") == resource
            ):
                out.append(event)
    return out


# The step Input and install of a platform team that opts in to Pod reads (docs/packages.md, "Install", step 4).
READ_PODS: Obj = {"status": {"readPods": True}}


def _apis_with_input(target: Path, step_input: Obj, source: Path = ROOT / "apis") -> Path:
    """A copy of apis/ (or `source`) whose Compositions' function step Input has `step_input` merged in (one level
    deep)."""
    import yaml

    shutil.copytree(source, target)
    for path in target.glob("*/composition.yaml"):
        doc = yaml.safe_load(path.read_text())
        for step in doc["spec"]["pipeline"]:
            for key, value in step_input.items():
                step["input"][key] = {**step["input"].get(key, {}), **value}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def configuration(name: str = "dbops") -> Obj:
    """The Configuration of docs/packages.md, step 2 (`dbops`, or the namespaced shape's `dbops-namespaced`)."""
    return {
        "apiVersion": "pkg.crossplane.io/v1",
        "kind": "Configuration",
        "metadata": {"name": name},
        "spec": {"package": f"{REGISTRY_PREFIX}{name}:{PACKAGE_VERSION}"},
    }


def _run(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


def _http_ok(url: str) -> bool:
    import urllib3

    return urllib3.request("GET", url, timeout=2, retries=False).status == 200


def _listening(port: int) -> bool:
    from tools.cluster.procs import listening

    return listening(port)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)


def main() -> int:
    """`python -m tools.cluster.controlplane`: start everything, install dbops, print how to reach it, and stop
    on Ctrl-C."""
    with ControlPlane.start(tools_dir()) as cp:
        cp.install()
        print(json.dumps({"kubeconfig": str(cp.base / "admin.kubeconfig"), "timings": cp.timings}, indent=2))
        print(f"export KUBECONFIG={cp.base / 'admin.kubeconfig'}   # Ctrl-C stops everything", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
