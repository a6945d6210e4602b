"""The C3 Render API's Python client: :class:`Client`, its errors, and :func:`verify_webhook`.

    from c3render_client import Client
    job = Client().run("whisper", audio_url="./talk.mp3", progress=True)
"""
from c3render_client.api import Client, Job, configured
from c3render_client.errors import (
    AmbiguousJobId,
    APIError,
    BadRequest,
    BudgetExceeded,
    C3RenderError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    JobFailed,
    Misconfigured,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    Unauthorized,
    Unavailable,
    UnknownJobType,
    WaitTimeout,
    WebhookVerificationError,
)
from c3render_client.webhooks import verify_webhook

__all__ = ["APIError", "AmbiguousJobId", "BadRequest", "BudgetExceeded", "C3RenderError", "Client", "Conflict",
           "ConnectionFailed", "Forbidden", "Gone", "Job", "JobFailed", "Misconfigured", "NotFound", "PayloadTooLarge",
           "QueueFull", "RateLimited", "Unauthorized", "Unavailable", "UnknownJobType", "WaitTimeout",
           "WebhookVerificationError", "configured", "verify_webhook"]
__version__ = "0.1.0"
