"""What a job is: the job model and its states, the job types (``types/``) and their catalog
(``spec``), and the schemas that validate a job's input.

May import only the base modules (errors, settings): no Redis, no I/O.
"""
