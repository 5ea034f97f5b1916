"""`dbops-worker apply|plan|check|drop|backup|restore [--request FILE]`: exit 0 converged, 1 transient, 2 permanent."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from dbops_api.backup import ACTION_KIND as BACKUP_ACTIONS
from dbops_api.request import ACTIONS, REQUEST_KINDS
from worker.errors import InvalidRequest, WorkerError, internal_error
from worker.request import admin_errors, parse, secrets_from_env
from worker.result import Result, redact, render, write_result_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dbops-worker",
        description="Provision databases, users and grants, back databases up; see docs/worker.md.",
    )
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("--request", metavar="FILE", help="request JSON file (default: env DBOPS_REQUEST)")
    args = parser.parse_args(argv)
    return run_cli(args.action, args.request)


def run_cli(action: str, request_file: str | None) -> int:
    secrets: list[str] = []
    text = ""
    try:
        text = _read_request(request_file)
        request = parse(text, action)
        creds = secrets_from_env(request)
        secrets = creds.values()
        refused = admin_errors(request, creds)
        if refused:
            raise InvalidRequest("; ".join(refused))
        if action in BACKUP_ACTIONS:
            # Imported only here: the other actions never load the object-store client, zstd or the cipher.
            from worker.backup import pipeline

            result = pipeline.run(action, request, creds, secrets)
        else:
            from worker.engine import run  # imported late: a bad request is answered before the driver loads

            result = run(action, request, creds, printer=lambda line: print(redact(line, secrets)))
    except WorkerError as exc:
        result = Result(kind=_kind_of(text), action=action, error=exc)
    # A bug anywhere: still one JSON result and exit 2 (InternalError), never a bare traceback and exit 1, which
    # the function would retry forever.
    except Exception as exc:
        # Where it happened, for the bug report: code locations only (an exception's text may hold values).
        print("".join(traceback.format_tb(exc.__traceback__)).rstrip(), file=sys.stderr)
        result = Result(kind=_kind_of(text), action=action, error=internal_error(exc))
        # It may strike before the secrets were read: redact whatever the environment holds.
        secrets = secrets or [os.environ.get(k, "") for k in SECRET_VARIABLES]
    return _finish(result, secrets)


SECRET_VARIABLES = (
    "DBOPS_ADMIN_PASSWORD",
    "DBOPS_PASSWORD",
)  # (files' contents are never in the environment)


def _kind_of(text: str) -> str:
    """The request's kind for an error result, when the text gets that far."""
    try:
        kind = json.loads(text).get("kind")
    except (ValueError, AttributeError):
        return "unknown"
    return kind if kind in REQUEST_KINDS else "unknown"


def _read_request(request_file: str | None) -> str:
    if request_file:
        try:
            with open(request_file, encoding="utf-8") as handle:
                return handle.read()
        except OSError as exc:
            raise InvalidRequest(f"--request: cannot read {request_file}: {exc.strerror}") from None
    text = os.environ.get("DBOPS_REQUEST")
    if not text:
        raise InvalidRequest("no request: pass --request FILE or set DBOPS_REQUEST")
    return text


def _finish(result: Result, secrets: list[str]) -> int:
    line = render(result, secrets)
    if result.error is not None:
        print(
            f"dbops-worker: {result.error.error_class} error {result.error.code}: "
            f"{redact(result.error.message, secrets)}",
            file=sys.stderr,
        )
    print(line)
    warning = write_result_file(line)
    if warning:
        print(f"dbops-worker: {warning}", file=sys.stderr)
    sys.stdout.flush()
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
