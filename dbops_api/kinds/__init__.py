"""The claim kinds, one module each; `dbops_api.registry` lists them."""
