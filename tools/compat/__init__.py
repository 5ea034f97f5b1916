"""Compatibility with the Go operator db-provision-operator: pinned data about its API and the generator of
docs/compatibility.md (issue 17). Nothing here is imported by the function or the worker."""
