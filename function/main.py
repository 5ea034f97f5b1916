"""`function`: serve function-dbops over gRPC (mTLS from --tls-certs-dir, or --insecure for local rendering)."""

from __future__ import annotations

from typing import Any

import click
from crossplane.function import cli as sdkcli

from function.fn import FunctionRunner
from function.metrics import Metrics


@click.command(help="Serve the function-dbops composition function.")
@sdkcli.standard_options
@click.option(
    "--offline",
    is_flag=True,
    envvar="DBOPS_OFFLINE",
    help="No API server validated the XRs (crossplane render, dbops-local): check each spec against its XRD's "
    "schema and CEL rules here. [env: DBOPS_OFFLINE]",
)
@click.option(
    "--metrics-address",
    default="",
    envvar="DBOPS_METRICS_ADDRESS",
    help="Serve Prometheus metrics at http://<address>/metrics (host:port, or :port for every interface); off "
    "when empty. The function image sets :8080. [env: DBOPS_METRICS_ADDRESS]",
)
def cli(offline: bool, metrics_address: str, **options: Any) -> None:
    """Start the server; any start-up failure (no credentials, unreadable certificates, address in use) exits
    non-zero with the reason instead of a silent exit 0."""
    if not options.get("insecure") and not options.get("tls_certs_dir"):
        raise click.UsageError(
            "pass --tls-certs-dir (or TLS_SERVER_CERTS_DIR) with tls.crt, tls.key, ca.crt, or --insecure"
        )
    try:
        metrics = Metrics(process=True)
        if metrics_address:
            metrics.serve(metrics_address)
        sdkcli.run(FunctionRunner(offline=offline, metrics=metrics), **options)
    except (OSError, RuntimeError, ValueError) as exc:
        raise click.ClickException(f"cannot serve: {exc}") from exc


if __name__ == "__main__":
    cli()
