"""The dbops API contract: the kinds' schemas, their validation and the worker's request and result models.

Both the composition function (`function/`) and the worker (`worker/`) import this package, and neither imports
the other. It depends on the standard library only, so either image can carry it.
"""
