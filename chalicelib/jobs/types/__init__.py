"""The job types that ship with the service: one module each, defining ``SPEC`` (chalicelib/jobs/spec.py)."""
