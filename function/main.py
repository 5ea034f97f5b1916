"""`function`: serve function-dbops over gRPC (mTLS from --tls-certs-dir, or --insecure for local rendering)."""

from __future__ import annotations

from typing import Any

import click
from crossplane.function import cli as sdkcli

from function.fn import FunctionRunner


@click.command(help="Serve the function-dbops composition function.")
@sdkcli.standard_options
@click.option(
    "--offline",
    is_flag=True,
    envvar="DBOPS_OFFLINE",
    help="No API server validated the XRs (crossplane render, dbops-local): check each spec against its XRD's "
    "schema and CEL rules here. [env: DBOPS_OFFLINE]",
)
def cli(offline: bool, **options: Any) -> None:
    """Start the server; any start-up failure (no credentials, unreadable certificates, address in use) exits
    non-zero with the reason instead of a silent exit 0."""
    if not options.get("insecure") and not options.get("tls_certs_dir"):
        raise click.UsageError(
            "pass --tls-certs-dir (or TLS_SERVER_CERTS_DIR) with tls.crt, tls.key, ca.crt, or --insecure"
        )
    try:
        sdkcli.run(FunctionRunner(offline=offline), **options)
    except (OSError, RuntimeError, ValueError) as exc:
        raise click.ClickException(f"cannot serve: {exc}") from exc


if __name__ == "__main__":
    cli()
