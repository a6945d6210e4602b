"""Operating the service: structured logs (with secrets and URLs redacted) and Prometheus metrics.

Shared by the API and the worker. May import store, security, jobs and the base modules (errors,
settings); never queues, files or api.
"""
