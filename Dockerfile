# One image per role, from the project's own requirements files at the lock's exact versions
# (requirements-lock.txt as pip constraints: only the role's packages are installed, each as locked):
#   target "app":     the API (gunicorn, the default command) and the worker (`python -m worker`)
#   target "devnode": the CPU stand-in for a Comput3 media node and control plane (local stacks only)
# Checked in CI with hadolint (tests/test_deploy.py).
FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app

FROM base AS app
COPY requirements.txt requirements-worker.txt requirements-lock.txt ./
# chalice needs pip<26.3: the lock's pip is
RUN pip install --no-cache-dir -c requirements-lock.txt pip \
    && pip install --no-cache-dir -r requirements-worker.txt -c requirements-lock.txt
COPY app.py wsgi.py serving.py gunicorn.conf.py ./
COPY .chalice/ .chalice/
COPY chalicelib/ chalicelib/
COPY worker/ worker/
USER 10001
# JSON log lines. (gunicorn.conf.py gives the API's processes a PROMETHEUS_MULTIPROC_DIR.)
ENV LOG_FORMAT=json \
    BIND=0.0.0.0:8000
EXPOSE 8000 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["gunicorn", "wsgi:application"]

FROM base AS devnode
COPY requirements-devnode.txt requirements-lock.txt ./
RUN pip install --no-cache-dir -r requirements-devnode.txt -c requirements-lock.txt
COPY devnode/ devnode/
USER 10001
EXPOSE 7860 8188
CMD ["python", "-m", "devnode", "--host", "0.0.0.0", "--port", "7860", "--comfy-port", "8188"]
