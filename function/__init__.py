"""dbops composition function: turns dbops XRs into credentials Secrets and worker Jobs, and Jobs into status."""
