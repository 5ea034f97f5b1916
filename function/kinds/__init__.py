"""One module per claim kind: what the function composes for it, given the shared driver."""
