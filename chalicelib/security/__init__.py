"""Who may do what, and what may be reached: API keys and authentication, the URL policy (the SSRF
guard), safe outbound HTTP, signed file links, and the signing of webhooks.

May import store, jobs and the base modules (errors, settings); never queues, files, ops or api.
"""
