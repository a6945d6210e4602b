"""Files: object storage (S3/MinIO through boto3, presigned URLs), uploads and voices.

May import store, jobs and the base modules (errors, settings); never security, queues, ops or api.
"""
