"""Settings: the one place that reads the environment, and where every setting is declared once.

Each field of :class:`Settings` is declared with :func:`setting`: the environment
names it is read from (the canonical name first, then aliases such as the seed's
``REDIS_HOST`` or ``MINIO_*``), its default, its unit and what it does. From
those declarations come the parsing (:meth:`Settings.from_env`), the component
configs (which take their values from a ``Settings``, never defaults of their
own) and ``.env.sample`` (``python -m chalicelib.settings > .env.sample``; a test
fails when the file is stale).

Built once at start-up; nothing else in the project reads ``os.environ``. Every
secret may also be given as ``NAME_FILE`` pointing at a file (Docker and
Kubernetes secrets).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from chalicelib.errors import ConfigError

DEFAULT_ANALYZE_PROMPT = ("Describe this image in detail: the subject, setting, colours, lighting, any text, "
                          "and anything notable.")


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


class Env:
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

    def number(self, names: tuple[str, ...], convert: Callable[[str], Any]) -> Any:
        value = self.raw(*names)
        if value is None:
            return None
        try:
            return convert(value)
        except ValueError as err:
            raise ConfigError(f"{names[0]}: expected a number, got {value!r}") from err

    def flag(self, names: tuple[str, ...]) -> bool | None:
        value = self.raw(*names)
        if value is None:
            return None
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{names[0]}: expected true/false, got {value!r}")

    def items(self, names: tuple[str, ...]) -> tuple[str, ...] | None:
        value = self.raw(*names)
        if value is None:
            return None
        return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Declared:
    """What :func:`setting` records about one setting."""

    env: tuple[str, ...]
    doc: str
    section: str
    unit: str = ""
    secret: bool = False
    choices: tuple[str, ...] = ()
    service: str = ""  # a node service whose URL template this is (worker/gpu/nodes.py)
    sample: str | None = None  # shown in .env.sample instead of the default
    parse: Callable[[Env, Declared], Any] | None = None  # for settings read from several variables
    bounds: tuple[float, float] | None = None  # a number's range (a value outside is a ConfigError)


def setting(*env: str, default: Any, doc: str, section: str, unit: str = "", secret: bool = False,
            choices: tuple[str, ...] = (), service: str = "", sample: str | None = None,
            parse: Callable[[Env, Declared], Any] | None = None, bounds: tuple[float, float] | None = None) -> Any:
    """Declare a setting: a dataclass field carrying its names, default, unit and doc."""
    declared = Declared(env=env, doc=doc, section=section, unit=unit, secret=secret, choices=choices,
                        service=service, sample=sample, parse=parse, bounds=bounds)
    if isinstance(default, (dict, list)):
        raise TypeError("settings are immutable: use a tuple or frozenset default")
    return field(default=default, metadata={"setting": declared})


def _redis_url(env: Env, declared: Declared) -> str | None:
    url = env.raw(*declared.env)
    if url:
        return url
    if not any(env.raw(name) for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD")):
        return None
    host = env.raw("REDIS_HOST") or "127.0.0.1"
    port = env.number(("REDIS_PORT",), int) or 6379
    db = env.number(("REDIS_DB",), int) or 0
    password = env.raw("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


def _endpoint(env: Env, declared: Declared) -> str | None:
    """MinIO's seed variables give ``host:port`` without a scheme; MINIO_SECURE picks https."""
    value = env.raw(*declared.env)
    if not value or "://" in value:
        return value
    return f"{'https' if env.flag(('MINIO_SECURE',)) else 'http'}://{value}"


def _lower_set(env: Env, declared: Declared) -> frozenset[str] | None:
    items = env.items(declared.env)
    return None if items is None else frozenset(item.lower() for item in items)


def _prices(env: Env, declared: Declared) -> tuple[tuple[str, float], ...] | None:
    """``1.20`` (every GPU type) or ``media:fast=1.20,ollama_webui:fast=0.80`` (per type)."""
    items = env.items(declared.env)
    if items is None:
        return None
    prices = []
    for item in items:
        gpu_type, _, price = item.rpartition("=") if "=" in item else ("*", "", item)
        try:
            value = float(price)
        except ValueError:
            raise ConfigError(f"{declared.env[0]}: expected a price per hour or TYPE=PRICE, got {item!r}") from None
        if value < 0:
            raise ConfigError(f"{declared.env[0]}: a price cannot be negative, got {item!r}")
        prices.append((gpu_type.strip() or "*", value))
    return tuple(prices)


def _upper(env: Env, declared: Declared) -> str | None:
    value = env.raw(*declared.env)
    return None if value is None else value.upper()


def _int(value: str) -> int:
    return int(float(value))


# Sections of .env.sample, in order.
REDIS, QUEUE, STORAGE, JOBS, WORKER, GPU = "Redis", "Queue", "Object storage", "Jobs and inputs", "Worker", "GPU nodes"
NODE, ENGINES, HOOKS, KEYS, SERVER, OBSERVE = ("Services on a node ({node} is its name)", "Engines", "Webhooks",
                                               "Keys and limits", "Self-hosted API (gunicorn.conf.py)",
                                               "Metrics and logs")


@dataclass(frozen=True, kw_only=True)
class Settings:
    # -- Redis: the job store, and by default the queue.
    redis_url: str = setting(
        "REDIS_URL", default="redis://127.0.0.1:6379/0", section=REDIS, parse=_redis_url,
        doc="or the seed's REDIS_HOST / REDIS_PORT / REDIS_DB / REDIS_PASSWORD")
    redis_timeout_s: float = setting("REDIS_TIMEOUT_S", default=0.5, unit="s", section=REDIS,
                                     doc="the API answers 503 within about this when Redis is down")
    # -- Queue.
    queue_url: str = setting("QUEUE_URL", default="redis", section=QUEUE,
                             doc="redis (the store's Redis), redis://..., sqs://NAME, or an SQS queue URL")
    queue_name: str = setting("QUEUE_NAME", default="jobs", section=QUEUE, doc="Redis list queue:jobs, as in the seed")
    sqs_endpoint_url: str | None = setting("SQS_ENDPOINT_URL", "AWS_ENDPOINT_URL", default=None, section=QUEUE,
                                           doc="LocalStack / moto; empty on AWS")
    aws_region: str = setting("AWS_REGION", "AWS_DEFAULT_REGION", default="us-east-1", section=QUEUE, doc="")
    # -- Object storage (S3, MinIO, LocalStack, moto).
    s3_endpoint_url: str | None = setting(
        "S3_ENDPOINT_URL", "MINIO_ENDPOINT", "AWS_ENDPOINT_URL", default=None, section=STORAGE, parse=_endpoint,
        doc="or the seed's MINIO_ENDPOINT (host:port; MINIO_SECURE=true for https)")
    s3_public_endpoint_url: str | None = setting(
        "S3_PUBLIC_ENDPOINT_URL", "MINIO_PUBLIC_ENDPOINT", "MINIO_PUBLIC_URL", default=None, section=STORAGE,
        parse=_endpoint, doc="or MINIO_PUBLIC_ENDPOINT / MINIO_PUBLIC_URL: the host clients download from")
    s3_access_key: str | None = setting("S3_ACCESS_KEY", "MINIO_ACCESS_KEY", "AWS_ACCESS_KEY_ID", default=None,
                                        section=STORAGE, doc="or MINIO_ACCESS_KEY / AWS_ACCESS_KEY_ID")
    s3_secret_key: str | None = setting("S3_SECRET_KEY", "MINIO_SECRET_KEY", "AWS_SECRET_ACCESS_KEY", default=None,
                                        secret=True, section=STORAGE, doc="or MINIO_SECRET_KEY / AWS_SECRET_ACCESS_KEY")
    s3_bucket: str = setting("S3_BUCKET", "MINIO_BUCKET", default="c3-render-results", section=STORAGE,
                             doc="or MINIO_BUCKET")
    create_missing: bool = setting(
        "CREATE_MISSING_RESOURCES", "S3_CREATE_BUCKET", default=False, section=STORAGE,
        doc="dev: create the bucket and SQS queue (+DLQ) when missing (alias S3_CREATE_BUCKET)")
    presign_ttl_s: int = setting("PRESIGN_TTL_S", default=3600, unit="s", section=STORAGE,
                                 doc="result URLs are re-signed on every read")
    result_url_ttl_s: int = setting(
        "RESULT_URL_TTL_S", default=7 * 24 * 3600, unit="s", section=STORAGE,
        doc="how long a result link (in webhooks, result_link) keeps working, whatever signs the bucket's URLs")
    public_api_url: str | None = setting(
        "PUBLIC_API_URL", default=None, section=STORAGE, sample="https://render.example.com",
        doc="where clients reach the API: lasting result links point there (unset: presigned URLs instead)")
    file_link_secret: str | None = setting(
        "FILE_LINK_SECRET", default=None, secret=True, section=STORAGE,
        doc="signs result links (unset: one is made once and kept in Redis)")
    upload_ttl_s: int = setting("UPLOAD_TTL_S", default=86400, unit="s", section=STORAGE,
                                doc="an upload is deleted this long after it was made (or after the job using it)")
    uploads_per_key_per_day: int = setting("UPLOADS_PER_KEY_PER_DAY", default=1000, section=STORAGE,
                                           doc="uploads (and data URIs) one key may make per UTC day (0: no limit)")
    sweep_every_s: float = setting("SWEEP_EVERY_S", default=60.0, unit="s", section=STORAGE,
                                   doc="how often a worker deletes expired results and uploads from the bucket")
    # -- Jobs and their inputs.
    result_ttl_s: int = setting("RESULT_TTL_S", default=7 * 24 * 3600, unit="s", section=JOBS,
                                doc="finished jobs are kept this long")
    idempotency_ttl_s: int = setting("IDEMPOTENCY_TTL_S", default=24 * 3600, unit="s", section=JOBS,
                                     doc="how long an Idempotency-Key is remembered")
    default_complete_in: int = setting(
        "DEFAULT_COMPLETE_IN", default=3600, unit="s", section=JOBS, bounds=(60, 86400),
        doc="a job's deadline to start when the request gives no complete_in (the first version's name)")
    default_max_time: int = setting(
        "DEFAULT_MAX_TIME", default=1200, unit="s", section=JOBS, bounds=(60, 7200),
        doc="a job's execution limit when the request gives no max_time (the first version's name)")
    max_wait_s: int = setting(
        "MAX_WAIT_S", default=60, unit="s", section=JOBS,
        doc="longest Prefer: wait / ?wait= a client may ask (Lambda: keep below API Gateway's 29 s)")
    max_attempts: int = setting("MAX_ATTEMPTS", default=3, section=JOBS,
                                doc="deliveries before a job fails (worker lost, node errors)")
    max_body_bytes: int = setting("MAX_BODY_BYTES", default=64 * 1024, unit="bytes", section=JOBS,
                                  doc="larger request bodies get 413")
    max_inline_body_bytes: int = setting(
        "MAX_INLINE_BODY_BYTES", default=8 * 1024 * 1024, unit="bytes", section=JOBS,
        doc="the body limit of a request that carries a data: URI (its bytes are stored as an upload)")
    max_audio_bytes: int = setting("MAX_AUDIO_BYTES", default=50 * 1024 * 1024, unit="bytes", section=JOBS,
                                   doc="input size cap for audio, enforced when the worker fetches")
    max_image_bytes: int = setting("MAX_IMAGE_BYTES", default=20 * 1024 * 1024, unit="bytes", section=JOBS,
                                   doc="input size cap for images")
    max_image_pixels: int = setting("MAX_IMAGE_PIXELS", default=50_000_000, section=JOBS,
                                    doc="largest decoded image (width x height), judged from its header")
    max_audio_duration_s: float = setting("MAX_AUDIO_DURATION_S", default=600.0, unit="s", section=JOBS,
                                          doc="longest audio input")
    fetch_timeout_s: float = setting("FETCH_TIMEOUT_S", default=30.0, unit="s", section=JOBS,
                                     doc="fetching one input URL")
    job_plugins: tuple[str, ...] = setting(
        "JOB_PLUGINS", default=(), section=JOBS,
        doc="extra modules that declare job types (spec + engine), imported by the API and the worker")
    # -- Worker.
    worker_engine: str = setting("WORKER_ENGINE", default="real", section=WORKER, choices=("real", "echo"),
                                 doc="real engines on GPU nodes; echo renders placeholders (tests)")
    worker_concurrency: int = setting("WORKER_CONCURRENCY", default=1, section=WORKER, doc="jobs at once per process")
    lease_s: float = setting("WORKER_LEASE_S", default=60.0, unit="s", section=WORKER,
                             doc="a dead worker's job returns to the queue after this")
    worker_heartbeat_s: float = setting("WORKER_HEARTBEAT_S", default=5.0, unit="s", section=WORKER,
                                        doc="how often a worker reports itself alive")
    worker_shutdown_grace_s: float = setting("WORKER_SHUTDOWN_GRACE_S", default=25.0, unit="s", section=WORKER,
                                             doc="on SIGTERM: finish the job in hand, or release it after this")
    echo_delay_s: float = setting("ECHO_DELAY_S", default=0.0, unit="s", section=WORKER,
                                  doc="echo engine: seconds each job takes (tests)")
    # -- GPU nodes (Comput3.ai).
    gpu_provider: str = setting("GPU_PROVIDER", default="static", section=GPU, choices=("static", "comput3"),
                                doc="comput3: rent nodes; static: the nodes in STATIC_NODES")
    c3_api_key: str | None = setting("C3_API_KEY", default=None, secret=True, section=GPU, doc="Comput3 API key")
    c3_api_url: str = setting("C3_API_URL", default="https://api.comput3.ai/api/v0", section=GPU, doc="")
    gpu_type: str = setting("GPU_TYPE", default="media:fast", section=GPU, doc="the Comput3 node type launched")
    gpu_lifetime_s: int = setting("GPU_LIFETIME_S", default=7200, unit="s", section=GPU,
                                  doc="launch sets expires = now + this")
    gpu_idle_timeout_s: int = setting("GPU_IDLE_TIMEOUT", default=300, unit="s", section=GPU,
                                      doc="an idle node is stopped after this")
    gpu_surplus_idle_s: float | None = setting(
        "GPU_SURPLUS_IDLE_S", default=None, unit="s", section=GPU, sample="",
        doc="e.g. 90: idle nodes beyond the one kept warm stop sooner (default: GPU_IDLE_TIMEOUT)")
    max_gpu_nodes: int = setting("MAX_GPU_NODES", default=2, section=GPU, doc="cap on nodes, all workers together")
    gpu_price_per_hour: tuple[tuple[str, float], ...] = setting(
        "GPU_PRICE_PER_HOUR", default=(), section=GPU, parse=_prices, sample="",
        doc="e.g. 1.20, or media:fast=1.20,ollama_webui:fast=0.80: jobs record their cost, /nodes and /usage "
            "show spend (unset: costs are not computed)")
    max_node_seconds_per_hour: float | None = setting(
        "MAX_NODE_SECONDS_PER_HOUR", default=None, unit="s", section=GPU, sample="",
        doc="a guard: no launch that would take the node-seconds billed in the last hour past this (jobs wait)")
    reconcile_every_s: float = setting(
        "RECONCILE_EVERY_S", default=120.0, unit="s", section=GPU,
        doc="how often the janitor compares the pool with the provider's running workloads")
    jobs_per_node: int = setting("JOBS_PER_NODE", default=1, section=GPU, doc="jobs a node runs at once")
    scale_up_queue_per_node: float = setting(
        "SCALE_UP_QUEUE_PER_NODE", default=1.0, section=GPU,
        doc="launch another node past this many jobs waiting per node slot")
    scale_up_after_s: float = setting("SCALE_UP_AFTER_S", default=10.0, unit="s", section=GPU,
                                      doc="...or when a job has waited this long for a busy node")
    pool_placement: str = setting(
        "POOL_PLACEMENT", default="spread", section=GPU, choices=("spread", "pack"),
        doc="spread: least recently used node (warm for bursts); pack: latest used (cheaper)")
    gpu_launch_retries: int = setting("GPU_LAUNCH_RETRIES", default=4, section=GPU,
                                      doc="retries of a failed launch (5xx, timeouts, HTML pages)")
    gpu_launch_backoff_s: float = setting("GPU_LAUNCH_BACKOFF_S", default=2.0, unit="s", section=GPU,
                                          doc="first retry delay; doubles each time")
    gpu_expiry_margin_s: float = setting("GPU_EXPIRY_MARGIN_S", default=120.0, unit="s", section=GPU,
                                         doc="life a node must have left beyond a job's max_time")
    node_ready_timeout_s: float = setting("NODE_READY_TIMEOUT_S", default=600.0, unit="s", section=GPU,
                                          doc="a launched node must pass its health check within this")
    static_nodes: tuple[str, ...] = setting(
        "STATIC_NODES", default=(), section=GPU,
        doc="node names, e.g. firmly-widely-proud-gpu.comput3.ai or 127.0.0.1:7860")
    # -- The services on a node: URL templates ({node} is the node's name).
    node_api_key: str | None = setting("NODE_API_KEY", "C3_API_KEY", default=None, secret=True, section=NODE,
                                       doc="X-C3-API-KEY for the node's services (default: C3_API_KEY)")
    node_health_url: str = setting("NODE_HEALTH_URL", default="https://{node}", section=NODE, service="health",
                                   doc="200 when the node is ready")
    csm_url: str = setting("CSM_URL", default="https://{node}/csm/", section=NODE, service="csm",
                           doc="the CSM Gradio app")
    whisper_url: str = setting("WHISPER_URL", default="https://{node}/whisper/", section=NODE, service="whisper",
                               doc="the WhisperX Gradio app")
    comfyui_url: str = setting("COMFYUI_URL", default="https://ui-{node}", section=NODE, service="comfyui",
                               doc="the ComfyUI HTTP API")
    ollama_url: str = setting("OLLAMA_URL", default="https://{node}", section=NODE, service="ollama",
                              doc="Ollama (or OpenAI-compatible) vision models")
    # -- Engines.
    analyze_api: str = setting("ANALYZE_API", default="ollama", section=ENGINES, choices=("ollama", "openai"),
                               doc="ollama (/api/generate) or openai (/v1/chat/completions)")
    analyze_model: str = setting("ANALYZE_MODEL", default="llama3.2-vision:11b", section=ENGINES,
                                 doc="the vision model when a job names none")
    analyze_prompt: str = setting("ANALYZE_PROMPT", default=DEFAULT_ANALYZE_PROMPT, section=ENGINES,
                                  sample="Describe this image in detail...", doc="when a job gives no prompt")
    # -- Webhooks.
    webhook_secret: str | None = setting(
        "WEBHOOK_SECRET", default=None, secret=True, section=HOOKS, sample="whsec_...",
        doc="signs the webhooks of jobs submitted without an API key (each key signs with its own)")
    webhook_secret_overlap_s: int = setting(
        "WEBHOOK_SECRET_OVERLAP_S", default=86400, unit="s", section=HOOKS,
        doc="after a key's webhook secret is rotated, the old one keeps signing beside the new for this long")
    webhook_retries: int = setting("WEBHOOK_RETRIES", default=5, section=HOOKS, doc="retries after a failed delivery")
    webhook_retry_delay_s: float = setting("WEBHOOK_RETRY_DELAY_S", default=5.0, unit="s", section=HOOKS,
                                           doc="between retries")
    webhook_timeout_s: float = setting("WEBHOOK_TIMEOUT_S", default=10.0, unit="s", section=HOOKS,
                                       doc="one delivery attempt")
    webhook_concurrency: int = setting("WEBHOOK_CONCURRENCY", default=16, section=HOOKS,
                                       doc="deliveries in flight per notifier")
    webhook_max_per_host: int = setting(
        "WEBHOOK_MAX_PER_HOST", default=4, section=HOOKS,
        doc="deliveries in flight to one receiving host, all notifiers together (a slow receiver costs only its own)")
    webhook_max_per_key: int = setting("WEBHOOK_MAX_PER_KEY", default=8, section=HOOKS,
                                       doc="deliveries in flight for one API key's jobs, all notifiers together")
    webhook_notifier: bool = setting(
        "WEBHOOK_NOTIFIER", default=True, section=HOOKS,
        doc="deliver webhooks from python -m worker (else run python -m worker.notifier)")
    allow_private_urls: bool = setting("ALLOW_PRIVATE_URLS", default=False, section=HOOKS,
                                       doc="true only for local development: inputs and webhooks may be private")
    url_allow_hosts: frozenset[str] = setting(
        "URL_ALLOW_HOSTS", default=frozenset(), section=HOOKS, parse=_lower_set,
        doc="host[:port],... reachable although private (e.g. minio:9000)")
    # -- Keys and limits.
    auth_required: bool = setting("AUTH_REQUIRED", default=True, section=KEYS,
                                  doc="every route but /health and /openapi.json needs an API key")
    auth_cache_s: float = setting("AUTH_CACHE_S", default=5.0, unit="s", section=KEYS,
                                  doc="key records cached per process (revocation delay)")
    unauthenticated_rate_per_s: float = setting(
        "UNAUTHENTICATED_RATE_PER_S", default=5.0, section=KEYS,
        doc="requests per second a client address may make without a valid key before 429 (0: no limit)")
    unauthenticated_burst: int = setting("UNAUTHENTICATED_BURST", default=20, section=KEYS,
                                         doc="...and at once")
    admin_api_key: str | None = setting("ADMIN_API_KEY", default=None, secret=True, section=KEYS,
                                        doc="a static admin key (sees all tenants)")
    c3_render_key: str | None = setting(
        "C3_RENDER_KEY", default=None, secret=True, section=KEYS,
        doc="the first version's static key: accepted as a key in compatibility mode v1 (its own record)")
    cors_allow_origins: tuple[str, ...] = setting("CORS_ALLOW_ORIGINS", default=(), section=KEYS,
                                                  doc="e.g. https://app.example.com; empty = CORS off")
    # -- The self-hosted API (gunicorn.conf.py).
    bind: str = setting("BIND", default="0.0.0.0:8000", section=SERVER, doc="where gunicorn listens")
    web_concurrency: int = setting("WEB_CONCURRENCY", default=0, section=SERVER, sample="",
                                   doc="gunicorn worker processes (0: one per core)")
    tls_cert_file: str | None = setting("TLS_CERT_FILE", default=None, section=SERVER,
                                        doc="PEM; with TLS_KEY_FILE gunicorn serves https")
    tls_key_file: str | None = setting("TLS_KEY_FILE", default=None, section=SERVER, doc="")
    access_log: str | None = setting("ACCESS_LOG", default=None, section=SERVER,
                                     doc="gunicorn access log ('-': stderr)")
    # -- Metrics and logs.
    metrics_port: int = setting("METRICS_PORT", default=9100, section=OBSERVE,
                                doc="worker: /metrics, /healthz, /readyz (0: off)")
    prometheus_multiproc_dir: str | None = setting(
        "PROMETHEUS_MULTIPROC_DIR", default=None, section=OBSERVE,
        doc="API under gunicorn: where its processes write metrics (gunicorn.conf.py sets one up)")
    metrics_token: str | None = setting(
        "METRICS_TOKEN", default=None, secret=True, section=OBSERVE,
        doc='API: /metrics wants "Authorization: Bearer <token>" when set')
    log_format: str = setting("LOG_FORMAT", default="text", section=OBSERVE, choices=("text", "json"),
                              doc="json in containers")
    log_level: str = setting("LOG_LEVEL", default="INFO", section=OBSERVE, parse=_upper, doc="")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: Path | None = None) -> Settings:
        """Build settings from the environment, with ``.env`` values underneath.

        Raises :class:`ConfigError` naming the variable when a value is malformed.
        """
        source = dict(os.environ if environ is None else environ)
        env_file = dotenv if dotenv is not None else Path(source.get("ENV_FILE", ".env"))
        env = Env({**read_dotenv(env_file), **source})
        values = {}
        for f in fields(cls):
            value = read(env, f)
            if value is not None:
                values[f.name] = value
        return cls(**values)

    def secrets(self) -> list[str]:
        """The secret values in force, for log redaction."""
        values = [getattr(self, f.name) for f in fields(self) if declared(f).secret]
        password = urlsplit(self.redis_url).password
        return [v for v in [*values, password] if v]

    def price_per_hour(self, gpu_type: str | None = None) -> float | None:
        """What a node of ``gpu_type`` (default: GPU_TYPE) costs per hour, or None when no price is set."""
        prices = dict(self.gpu_price_per_hour)
        return prices.get(gpu_type or self.gpu_type, prices.get("*"))

    def service_templates(self) -> dict[str, str]:
        """Node service name -> URL template, from every setting declared as a service."""
        return {declared(f).service: getattr(self, f.name) for f in fields(self) if declared(f).service}

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if declared(f).secret and value:
                value = "***"
            elif f.name == "redis_url" and "@" in str(value):
                value = "redis://***@" + str(value).split("@", 1)[1]
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"


def declared(f: Field[Any]) -> Declared:
    return f.metadata["setting"]  # type: ignore[no-any-return]


_CONVERT: dict[str, Callable[[Env, tuple[str, ...]], Any]] = {
    "int": lambda env, names: env.number(names, _int),
    "float": lambda env, names: env.number(names, float),
    "float | None": lambda env, names: env.number(names, float),
    "bool": lambda env, names: env.flag(names),
    "tuple[str, ...]": lambda env, names: env.items(names),
    "str": lambda env, names: env.raw(*names),
    "str | None": lambda env, names: env.raw(*names),
}


def read(env: Env, f: Field[Any]) -> Any:
    """One setting's value from the environment, or None when it is not set."""
    spec = declared(f)
    value = spec.parse(env, spec) if spec.parse else _CONVERT[str(f.type)](env, spec.env)
    if value is not None and spec.choices:
        value = str(value).strip().lower()
        if value not in spec.choices:
            raise ConfigError(f"{spec.env[0]}: expected one of {', '.join(spec.choices)}, got {value!r}")
    if value is not None and spec.bounds and not spec.bounds[0] <= value <= spec.bounds[1]:
        low, high = (int(b) if float(b).is_integer() else b for b in spec.bounds)
        raise ConfigError(f"{spec.env[0]}: expected {low} to {high}, got {value}")
    return value


def env_sample() -> str:
    """The text of ``.env.sample``: every setting, its default and what it does, by section."""
    lines = ["# Every setting, with its default. Copy to .env; the environment overrides .env.",
             "# Any secret may instead be read from a file: NAME_FILE=/run/secrets/name.",
             "# Generated from chalicelib/settings.py: python -m chalicelib.settings > .env.sample"]
    section = None
    for f in fields(Settings):
        spec = declared(f)
        if spec.section != section:
            section = spec.section
            lines += ["", f"# --- {section} ---"]
        shown = spec.sample if spec.sample is not None else _show(f.default)
        entry = f"# {spec.env[0]}={shown}"
        notes = [spec.doc] if spec.doc else []
        if spec.unit and spec.unit != "s":
            notes.insert(0, f"in {spec.unit}")
        if spec.choices:
            notes.append(f"one of: {', '.join(spec.choices)}")
        lines.append(f"{entry:42} # {'; '.join(notes)}" if notes else entry)
    return "\n".join(lines) + "\n"


def _show(default: Any) -> str:
    if default is None or default is MISSING:
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, (tuple, frozenset)):
        return ",".join(sorted(default) if isinstance(default, frozenset) else default)
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


if __name__ == "__main__":
    sys.stdout.write(env_sample())
