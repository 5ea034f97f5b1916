"""XDatabaseRole: waits for its DatabaseInstance, then one `dbops-worker apply|drop` Job per desired state."""

from __future__ import annotations

from function.kinds.database import resolve_instance
from function.kinds.driver import Kind, compose
from function.outcome import Outcome
from function.view import View

# The references are a Database's: the instance alone.
KIND = Kind("DatabaseRole", resolve_instance)


def compose_role(view: View) -> Outcome:
    return compose(view, KIND)
