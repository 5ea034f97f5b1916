"""Run dbops claims against real database servers without a cluster (`dbops-local`).

`crossplane render` shows what would be created; this shows what happens. It plays Crossplane and Kubernetes:
claims become XRs, the function is called over gRPC exactly as Crossplane calls it, desired Secrets are stored,
each new Job's worker command runs locally with the environment its spec declares, and the Job's and Pod's status
go back to the function as observed resources, until nothing changes. See docs/offline.md.
"""
