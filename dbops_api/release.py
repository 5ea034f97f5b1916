"""The release these packages belong to: one number for the wheel (pyproject reads it from here), the images and
the worker image a Composition runs by default (`function.input.DEFAULT_WORKER_IMAGE`), so a function never
composes Jobs for a worker of another release unless the step Input says so."""

VERSION = "0.1.0"
WORKER_IMAGE_REPOSITORY = "ghcr.io/dbprovision/dbops-worker"
WORKER_IMAGE = f"{WORKER_IMAGE_REPOSITORY}:v{VERSION}"
