"""dbops provisioning worker: observe a database server, plan the statements that converge it, apply them."""
