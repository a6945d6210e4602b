"""Settings: the one place that reads the environment.

Built once at start-up by :meth:`Settings.from_env`; nothing else in the
project reads ``os.environ``. The seed's variable names (``REDIS_HOST``,
``MINIO_*``, ``C3_API_KEY``, ``GPU_IDLE_TIMEOUT`` ...) keep working beside the
canonical ones. Every secret may also be given as ``NAME_FILE`` pointing at a
file (Docker and Kubernetes secrets).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import quote, urlsplit

from chalicelib.errors import ConfigError

SECRET_SETTINGS = ("s3_secret_key", "c3_api_key", "node_api_key", "webhook_secret", "admin_api_key",
                   "metrics_token")


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file (KEY=VALUE lines, ``#`` comments, optional quotes)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


class _Env:
    """Typed look-ups over a mapping, with ``NAME_FILE`` support and aliases."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, *names: str) -> str | None:
        for name in names:
            file_path = self._env.get(f"{name}_FILE")
            if file_path:
                try:
                    return Path(file_path).read_text().strip()
                except OSError as err:
                    raise ConfigError(f"{name}_FILE: cannot read {file_path}: {err.strerror}") from err
            value = self._env.get(name)
            if value is not None and value != "":
                return value
        return None

    def get_str(self, *names: str, default: str = "") -> str:
        value = self.raw(*names)
        return default if value is None else value

    def get_int(self, *names: str, default: int) -> int:
        value = self.raw(*names)
        if value is None:
            return default
        try:
            return int(float(value))
        except ValueError as err:
            raise ConfigError(f"{names[0]}: expected a number, got {value!r}") from err

    def get_float(self, *names: str, default: float) -> float:
        value = self.raw(*names)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError as err:
            raise ConfigError(f"{names[0]}: expected a number, got {value!r}") from err

    def get_list(self, *names: str) -> tuple[str, ...]:
        """A comma-separated value as a tuple of non-empty items."""
        return tuple(item.strip() for item in self.get_str(*names).split(",") if item.strip())

    def get_choice(self, *names: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get_str(*names, default=default).strip().lower()
        if value not in choices:
            raise ConfigError(f"{names[0]}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def get_bool(self, *names: str, default: bool) -> bool:
        value = self.raw(*names)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{names[0]}: expected true/false, got {value!r}")


def _redis_url(env: _Env) -> str:
    url = env.raw("REDIS_URL")
    if url:
        return url
    host = env.get_str("REDIS_HOST", default="127.0.0.1")
    port = env.get_int("REDIS_PORT", default=6379)
    db = env.get_int("REDIS_DB", default=0)
    password = env.raw("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


def _endpoint(value: str | None, secure: bool) -> str | None:
    """MinIO's seed variables give ``host:port`` without a scheme."""
    if not value:
        return None
    if "://" in value:
        return value
    return f"{'https' if secure else 'http'}://{value}"


@dataclass(frozen=True, kw_only=True)
class Settings:
    # Redis: job store (always) and, by default, the queue.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = 0.5
    # Queue: "redis" (the job store's Redis), a redis:// URL, sqs://NAME or an SQS queue URL.
    queue_url: str = "redis"
    queue_name: str = "jobs"
    sqs_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    # Object storage (S3, MinIO, LocalStack, moto).
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_bucket: str = "c3-render-results"
    create_missing: bool = False  # dev stacks: create the bucket and SQS queue when missing
    presign_ttl_s: int = 3600
    # Input limits (enforced by the worker when it fetches inputs).
    max_audio_bytes: int = 50 * 1024 * 1024
    max_image_bytes: int = 20 * 1024 * 1024
    max_audio_duration_s: float = 600.0
    fetch_timeout_s: float = 30.0
    # Jobs.
    result_ttl_s: int = 7 * 24 * 3600
    idempotency_ttl_s: int = 24 * 3600
    max_attempts: int = 3
    max_body_bytes: int = 64 * 1024
    # Worker.
    lease_s: float = 60.0
    worker_concurrency: int = 1
    worker_engine: str = "real"  # real engines on GPU nodes; "echo" renders placeholders (tests)
    worker_heartbeat_s: float = 5.0
    worker_shutdown_grace_s: float = 25.0
    echo_delay_s: float = 0.0
    # GPU nodes.
    c3_api_key: str | None = None
    gpu_idle_timeout_s: int = 300
    gpu_surplus_idle_s: float | None = None  # None: the same as gpu_idle_timeout_s
    gpu_provider: str = "static"
    static_nodes: tuple[str, ...] = ()
    node_api_key: str | None = None  # X-C3-API-KEY for the node's services; defaults to C3_API_KEY
    node_health_url: str = "https://{node}"
    csm_url: str = "https://{node}/csm/"
    whisper_url: str = "https://{node}/whisper/"
    comfyui_url: str = "https://ui-{node}"
    ollama_url: str = "https://{node}"
    node_ready_timeout_s: float = 600.0
    c3_api_url: str = "https://api.comput3.ai/api/v0"
    gpu_type: str = "media:fast"
    gpu_lifetime_s: int = 7200
    max_gpu_nodes: int = 2
    jobs_per_node: int = 1
    scale_up_queue_per_node: float = 1.0
    scale_up_after_s: float = 10.0
    pool_placement: str = "spread"
    gpu_launch_retries: int = 4
    gpu_launch_backoff_s: float = 2.0
    gpu_expiry_margin_s: float = 120.0
    # Engines.
    analyze_api: str = "ollama"  # ollama | openai
    analyze_model: str = "llama3.2-vision:11b"
    analyze_prompt: str = ("Describe this image in detail: the subject, setting, colours, lighting, any text, "
                           "and anything notable.")
    # Webhooks.
    webhook_secret: str | None = None
    webhook_retries: int = 5
    webhook_retry_delay_s: float = 5.0
    webhook_timeout_s: float = 10.0
    webhook_concurrency: int = 16
    webhook_notifier: bool = True  # deliver webhooks from the worker process
    allow_private_urls: bool = False
    url_allow_hosts: frozenset[str] = frozenset()  # host or host:port reachable although private
    # Auth.
    auth_required: bool = True
    auth_cache_s: float = 5.0
    admin_api_key: str | None = None
    cors_allow_origins: tuple[str, ...] = ()
    # Metrics: the worker serves /metrics, /healthz and /readyz on this port (0: off);
    # the API's /metrics asks for "Authorization: Bearer METRICS_TOKEN" when one is set.
    metrics_port: int = 9100
    metrics_token: str | None = None
    # Logging.
    log_format: str = "text"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: Path | None = None) -> Settings:
        """Build settings from the environment, with ``.env`` values underneath.

        Raises :class:`ConfigError` naming the variable when a value is malformed.
        """
        source = dict(os.environ if environ is None else environ)
        env_file = dotenv if dotenv is not None else Path(source.get("ENV_FILE", ".env"))
        merged = {**read_dotenv(env_file), **source}
        env = _Env(merged)
        minio_secure = env.get_bool("MINIO_SECURE", default=False)
        redis_url = _redis_url(env)
        return cls(
            redis_url=redis_url,
            redis_timeout_s=env.get_float("REDIS_TIMEOUT_S", default=0.5),
            queue_url=env.get_str("QUEUE_URL", default="redis"),
            queue_name=env.get_str("QUEUE_NAME", default="jobs"),
            sqs_endpoint_url=env.raw("SQS_ENDPOINT_URL", "AWS_ENDPOINT_URL"),
            aws_region=env.get_str("AWS_REGION", "AWS_DEFAULT_REGION", default="us-east-1"),
            s3_endpoint_url=_endpoint(env.raw("S3_ENDPOINT_URL", "MINIO_ENDPOINT", "AWS_ENDPOINT_URL"), minio_secure),
            s3_public_endpoint_url=_endpoint(env.raw("S3_PUBLIC_ENDPOINT_URL", "MINIO_PUBLIC_ENDPOINT"), minio_secure),
            s3_access_key=env.raw("S3_ACCESS_KEY", "MINIO_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
            s3_secret_key=env.raw("S3_SECRET_KEY", "MINIO_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
            s3_bucket=env.get_str("S3_BUCKET", "MINIO_BUCKET", default="c3-render-results"),
            create_missing=env.get_bool("CREATE_MISSING_RESOURCES", "S3_CREATE_BUCKET", default=False),
            presign_ttl_s=env.get_int("PRESIGN_TTL_S", default=3600),
            max_audio_bytes=env.get_int("MAX_AUDIO_BYTES", default=50 * 1024 * 1024),
            max_image_bytes=env.get_int("MAX_IMAGE_BYTES", default=20 * 1024 * 1024),
            max_audio_duration_s=env.get_float("MAX_AUDIO_DURATION_S", default=600.0),
            fetch_timeout_s=env.get_float("FETCH_TIMEOUT_S", default=30.0),
            result_ttl_s=env.get_int("RESULT_TTL_S", default=7 * 24 * 3600),
            idempotency_ttl_s=env.get_int("IDEMPOTENCY_TTL_S", default=24 * 3600),
            max_attempts=env.get_int("MAX_ATTEMPTS", default=3),
            max_body_bytes=env.get_int("MAX_BODY_BYTES", default=64 * 1024),
            lease_s=env.get_float("WORKER_LEASE_S", default=60.0),
            worker_concurrency=env.get_int("WORKER_CONCURRENCY", default=1),
            worker_engine=env.get_str("WORKER_ENGINE", default="real"),
            worker_heartbeat_s=env.get_float("WORKER_HEARTBEAT_S", default=5.0),
            worker_shutdown_grace_s=env.get_float("WORKER_SHUTDOWN_GRACE_S", default=25.0),
            echo_delay_s=env.get_float("ECHO_DELAY_S", default=0.0),
            c3_api_key=env.raw("C3_API_KEY"),
            gpu_idle_timeout_s=env.get_int("GPU_IDLE_TIMEOUT", default=300),
            gpu_surplus_idle_s=(env.get_float("GPU_SURPLUS_IDLE_S", default=0.0)
                                if env.raw("GPU_SURPLUS_IDLE_S") else None),
            gpu_provider=env.get_str("GPU_PROVIDER", default="static"),
            static_nodes=env.get_list("STATIC_NODES"),
            node_api_key=env.raw("NODE_API_KEY", "C3_API_KEY"),
            node_health_url=env.get_str("NODE_HEALTH_URL", default="https://{node}"),
            csm_url=env.get_str("CSM_URL", default="https://{node}/csm/"),
            whisper_url=env.get_str("WHISPER_URL", default="https://{node}/whisper/"),
            comfyui_url=env.get_str("COMFYUI_URL", default="https://ui-{node}"),
            ollama_url=env.get_str("OLLAMA_URL", default="https://{node}"),
            node_ready_timeout_s=env.get_float("NODE_READY_TIMEOUT_S", default=600.0),
            c3_api_url=env.get_str("C3_API_URL", default="https://api.comput3.ai/api/v0"),
            gpu_type=env.get_str("GPU_TYPE", default="media:fast"),
            gpu_lifetime_s=env.get_int("GPU_LIFETIME_S", default=7200),
            max_gpu_nodes=env.get_int("MAX_GPU_NODES", default=2),
            jobs_per_node=env.get_int("JOBS_PER_NODE", default=1),
            scale_up_queue_per_node=env.get_float("SCALE_UP_QUEUE_PER_NODE", default=1.0),
            scale_up_after_s=env.get_float("SCALE_UP_AFTER_S", default=10.0),
            pool_placement=env.get_choice("POOL_PLACEMENT", default="spread", choices=("spread", "pack")),
            gpu_launch_retries=env.get_int("GPU_LAUNCH_RETRIES", default=4),
            gpu_launch_backoff_s=env.get_float("GPU_LAUNCH_BACKOFF_S", default=2.0),
            gpu_expiry_margin_s=env.get_float("GPU_EXPIRY_MARGIN_S", default=120.0),
            analyze_api=env.get_str("ANALYZE_API", default="ollama"),
            analyze_model=env.get_str("ANALYZE_MODEL", default="llama3.2-vision:11b"),
            analyze_prompt=env.get_str("ANALYZE_PROMPT", default=cls.analyze_prompt),
            webhook_secret=env.raw("WEBHOOK_SECRET"),
            webhook_retries=env.get_int("WEBHOOK_RETRIES", default=5),
            webhook_retry_delay_s=env.get_float("WEBHOOK_RETRY_DELAY_S", default=5.0),
            webhook_timeout_s=env.get_float("WEBHOOK_TIMEOUT_S", default=10.0),
            webhook_concurrency=env.get_int("WEBHOOK_CONCURRENCY", default=16),
            webhook_notifier=env.get_bool("WEBHOOK_NOTIFIER", default=True),
            allow_private_urls=env.get_bool("ALLOW_PRIVATE_URLS", default=False),
            url_allow_hosts=frozenset(h.lower() for h in env.get_list("URL_ALLOW_HOSTS")),
            auth_required=env.get_bool("AUTH_REQUIRED", default=True),
            auth_cache_s=env.get_float("AUTH_CACHE_S", default=5.0),
            admin_api_key=env.raw("ADMIN_API_KEY"),
            cors_allow_origins=env.get_list("CORS_ALLOW_ORIGINS"),
            metrics_port=env.get_int("METRICS_PORT", default=9100),
            metrics_token=env.raw("METRICS_TOKEN"),
            log_format=env.get_str("LOG_FORMAT", default="text"),
            log_level=env.get_str("LOG_LEVEL", default="INFO").upper(),
        )

    def secrets(self) -> list[str]:
        """The secret values in force, for log redaction."""
        values = [getattr(self, name) for name in SECRET_SETTINGS]
        password = urlsplit(self.redis_url).password
        return [v for v in [*values, password] if v]

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_SETTINGS and value:
                value = "***"
            elif f.name == "redis_url" and "@" in str(value):
                value = "redis://***@" + str(value).split("@", 1)[1]
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"
