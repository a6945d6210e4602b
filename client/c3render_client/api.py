"""The client: submit jobs, wait for them (wait mode and the timeline's long poll), fetch their outputs.

Retries are safe: every submit carries its own ``Idempotency-Key``, so a submit sent again after a
lost answer returns the same job. A 429 that clears soon (the key's request rate) and 503s are
retried after their ``Retry-After``; connection errors with a doubling backoff. A 429 that will not
clear soon (``too_many_queued_jobs``, ``budget_exceeded``) is raised at once.
"""
from __future__ import annotations

import json
import mimetypes
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import requests
import urllib3

from c3render_client import errors
from c3render_client.progress import ProgressDisplay

TERMINAL = ("success", "failed", "cancelled", "timed_out")
INPUT_FIELDS = ("audio_url", "image_url", "reference_audio_url")  # fields that take a file
LONG_POLL_S = 25  # a long poll's wait: under API Gateway's 29 s, so it works against Lambda too
USER_AGENT = "c3render-client/0.1"
WHOLE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SHORT_ID = re.compile(r"[0-9a-fA-F-]{1,36}")  # the start of a job id (c3render jobs shows 8 characters)


class Job(dict[str, Any]):
    """A job's view as the API answered it (a dict), with its usual fields as attributes."""

    id = property(lambda self: self.get("id"))
    type = property(lambda self: self.get("type"))
    status = property(lambda self: self.get("status"))
    progress = property(lambda self: self.get("progress"))
    error = property(lambda self: self.get("error"))
    text = property(lambda self: self.get("text"))
    result_url = property(lambda self: self.get("result_url"))
    files = property(lambda self: self.get("files") or {})
    cancel_outcome = property(lambda self: self.get("cancel_outcome"))  # too_late: it ended on its own first

    @property
    def ended(self) -> bool:
        return self.get("status") in TERMINAL


def find_stack(start: Path | None = None) -> Path | None:
    """The running local stack's ``.run/stack.json`` (``make run``), from here or a parent directory."""
    if os.environ.get("C3RENDER_STACK"):
        return Path(os.environ["C3RENDER_STACK"])
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / ".run" / "stack.json"
        if candidate.exists():
            return candidate
    return None


def configured(url: str | None = None, api_key: str | None = None) -> tuple[str | None, str | None]:
    """Where the API is and its key: given, else ``C3RENDER_URL`` / ``C3RENDER_API_KEY``, else the config
    file (``C3RENDER_CONFIG``, default ``~/.config/c3render/config.json``: ``{"url", "api_key"}``), else
    the running local stack's ``.run/stack.json`` (first, when ``C3RENDER_STACK`` names it, as
    ``./c3render`` in the repository does).

    A URL and a key are taken as a pair: a file's key is used only with that file's URL, so a key
    never goes to an API its file did not name."""
    url = url or os.environ.get("C3RENDER_URL")
    api_key = api_key or os.environ.get("C3RENDER_API_KEY")
    config = Path(os.environ.get("C3RENDER_CONFIG") or Path.home() / ".config" / "c3render" / "config.json")
    sources = [(config, "url", "api_key"), (find_stack(), "api", "key")]
    if os.environ.get("C3RENDER_STACK"):
        sources.reverse()
    for source, url_key, key_key in sources:
        if url and api_key:
            break
        if source is None or not source.exists():
            continue
        try:
            data = json.loads(source.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not data.get(url_key):
            continue
        if url is None:
            url = str(data[url_key])
            api_key = api_key or data.get(key_key)
            break
        if url.rstrip("/") == str(data[url_key]).rstrip("/"):
            api_key = data.get(key_key)
            break
    return url, api_key


class Client:
    """The C3 Render API. ``url`` and ``api_key`` default as :func:`configured` says."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout_s: float = 30.0,
                 max_retries: int = 5, max_retry_wait_s: float = 60.0,
                 session: requests.Session | None = None) -> None:
        url, api_key = configured(url, api_key)
        if not url:
            raise errors.Misconfigured("no API URL: give one, or set C3RENDER_URL (or run `make run` here)")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self.http = session or requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        if api_key:
            self.http.headers["Authorization"] = f"Bearer {api_key}"

    # -- HTTP --------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, timeout_s: float | None = None,
                expect_json: bool = True) -> Any:
        """One API call, retried where that is safe (see the module's doc). Returns the JSON answer."""
        attempt = 0
        # Sent twice, a GET changes nothing and a submit carries its Idempotency-Key; any other call is
        # sent again only when it cannot have reached the API (the connection was never made, or
        # the API refused it with a 429, which it answers before acting).
        safe = method in ("GET", "HEAD") or "Idempotency-Key" in (headers or {})
        while True:
            try:
                reply = self.http.request(method, f"{self.url}{path}", json=json_body, params=params,
                                          headers=dict(headers or {}), timeout=timeout_s or self.timeout_s)
            except requests.ConnectionError as err:
                if attempt >= self.max_retries or not (safe or _never_sent(err)):
                    raise errors.ConnectionFailed(f"cannot reach {self.url}: {err}") from err
                time.sleep(min(self.max_retry_wait_s, 0.5 * 2 ** attempt))
                attempt += 1
                continue
            except requests.Timeout as err:
                raise errors.ConnectionFailed(f"{self.url} did not answer within {timeout_s or self.timeout_s} s") \
                    from err
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                    requests.exceptions.InvalidSchema) as err:
                raise errors.Misconfigured(f"not an API URL: {self.url!r} ({err})") from err
            except requests.RequestException as err:
                raise errors.ConnectionFailed(f"{method} {self.url}{path} failed: {err}") from err
            if reply.status_code < 400:
                if not expect_json or reply.status_code == 204 or not reply.content:
                    return reply
                try:
                    return reply.json()
                except ValueError:
                    raise errors.C3RenderError(f"{method} {path}: HTTP {reply.status_code} but not JSON; is "
                                               f"{self.url} the C3 Render API?") from None
            retry_after = _retry_after(reply.headers.get("Retry-After"))
            try:
                body = reply.json()
            except ValueError:
                body = {"error": {"code": f"http_{reply.status_code}", "message": reply.text[:200]}}
            error = errors.from_response(reply.status_code, body, retry_after)
            retriable = type(error) is errors.RateLimited or (safe and type(error) is errors.Unavailable)
            wait = retry_after if retry_after is not None else min(self.max_retry_wait_s, 0.5 * 2 ** attempt)
            if not retriable or attempt >= self.max_retries or wait > self.max_retry_wait_s:
                raise error
            time.sleep(wait)
            attempt += 1

    # -- jobs ----------------------------------------------------------------------------------------

    def submit(self, job_type: str, *, idempotency_key: str | None = None, wait_s: int = 0,
               **params: Any) -> Job:
        """Submit a job; local files given to an input field (``audio_url``, ``image_url``,
        ``reference_audio_url``) are uploaded first (so pass only URLs there when the value comes from
        someone else: a path they name would be read and uploaded). ``wait_s``: ``Prefer: wait`` (the
        answer may then be the ended job)."""
        body = {name: self._input(name, value) for name, value in params.items()}
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        if wait_s:
            headers["Prefer"] = f"wait={int(wait_s)}"
        try:
            return Job(self.request("POST", f"/{job_type}", json_body=body, headers=headers,
                                    timeout_s=self.timeout_s + wait_s))
        except errors.APIError as err:
            # /cms is no route (404); /jobs or /uploads are routes, but not job types (405, 400)
            if err.status in (400, 404, 405):
                types = self._job_types_if_known()
                if types is not None and job_type not in types:
                    raise errors.UnknownJobType(job_type, types, err) from err
            raise

    def job_types(self) -> list[str]:
        """The job types the API serves (``csm``, ``whisper`` ...), as its OpenAPI document lists them
        (the ``type`` filter of ``GET /jobs``)."""
        doc = self.request("GET", "/openapi.json")
        try:
            params = doc["paths"]["/jobs"]["get"]["parameters"]
            return [str(name) for name in next(p for p in params if p.get("name") == "type")["schema"]["enum"]]
        except (KeyError, TypeError, StopIteration) as err:
            raise errors.C3RenderError(f"{self.url}/openapi.json does not list the job types") from err

    def _job_types_if_known(self) -> list[str] | None:
        try:
            return self.job_types()
        except errors.C3RenderError:
            return None  # the error being raised says enough

    def run(self, job_type: str, *, wait: bool = True, progress: bool | Callable[[Job, dict[str, Any] | None], None]
            = False, timeout_s: float | None = None, raise_on_failure: bool = True, **params: Any) -> Job:
        """Submit and, with ``wait``, return the ended job with its result fields (``result_url``,
        ``text``, ``files`` ...). ``progress``: True for a progress bar on stderr (plain lines when it is
        not a terminal), or a callable given the job and each timeline event. Raises
        :class:`~c3render_client.errors.JobFailed` for a job that did not succeed (unless
        ``raise_on_failure`` is False)."""
        job = self.submit(job_type, wait_s=min(LONG_POLL_S, int(timeout_s or LONG_POLL_S)) if wait else 0, **params)
        if wait and not job.ended:
            job = self.wait(job, progress=progress, timeout_s=timeout_s)
        elif wait and progress:
            _report(progress, job, None)
        if wait and raise_on_failure and job.status != "success":
            raise errors.JobFailed(job)
        return job

    def resolve(self, job_id: str) -> str:
        """The whole id of the job ``job_id`` names: a whole id, or the start of one (a short id, as
        ``c3render jobs`` shows 8 characters), any case. Anything else is returned as given, for the API
        to judge. Raises :class:`~c3render_client.errors.NotFound` when no job of this key has an id
        that starts so, :class:`~c3render_client.errors.AmbiguousJobId` when several do."""
        given = job_id.strip()
        if WHOLE_ID.fullmatch(given) or not SHORT_ID.fullmatch(given):
            return given
        prefix = given.lower()
        cap = errors.AmbiguousJobId.CANDIDATES
        found = list(self.list(id_prefix=prefix, page_size=cap, limit=cap))
        if not found:
            raise errors.NotFound(404, "not_found", f"no job of this key has an id that starts with {prefix}")
        if len(found) > 1:
            raise errors.AmbiguousJobId(prefix, found)
        return str(found[0].id)

    def get(self, job_id: str, *, wait_s: int = 0) -> Job:
        return Job(self.request("GET", f"/jobs/{job_id}", params={"wait": wait_s} if wait_s else None,
                                timeout_s=self.timeout_s + wait_s))

    def result(self, job_id: str) -> dict[str, Any]:
        """An ended job's result (``result_url`` or ``text``, ``files`` ...; ``error`` if it failed).
        Raises :class:`~c3render_client.errors.Conflict` while it has not ended."""
        return dict(self.request("GET", f"/result/{job_id}"))

    def events(self, job_id: str, *, after: int | str = 0, wait_s: int = 0) -> tuple[list[dict[str, Any]], str]:
        """The job's timeline after ``after``: ``(events, next cursor)``; ``wait_s`` long-polls for new ones."""
        params: dict[str, Any] = {"after": after}
        if wait_s:
            params["wait"] = wait_s
        page = self.request("GET", f"/jobs/{job_id}/events", params=params, timeout_s=self.timeout_s + wait_s)
        return list(page["events"]), str(page["next"])

    def follow(self, job_id: str, *, after: int | str = 0) -> Iterator[dict[str, Any]]:
        """Every event of the job's timeline, as it happens, until the job has ended."""
        cursor = str(after)
        while True:
            found, cursor = self.events(job_id, after=cursor, wait_s=LONG_POLL_S)
            yield from found
            if any(e.get("type") == "finished" for e in found):
                return
            if not found and self.get(job_id).ended:
                return

    def wait(self, job: Job | str, *, timeout_s: float | None = None,
             progress: bool | Callable[[Job, dict[str, Any] | None], None] = False) -> Job:
        """The job once it has ended, with its result fields; follows its timeline (a long poll), so it
        answers as soon as the job ends. Raises :class:`~c3render_client.errors.WaitTimeout`."""
        job_id = job if isinstance(job, str) else job["id"]
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        reporter = _Progress(progress) if progress is True else None
        callback: Callable[[Job, dict[str, Any] | None], None] | None = (
            reporter.update if reporter else (progress if callable(progress) else None))
        last_view = time.monotonic()
        try:
            _, cursor = self.events(job_id)  # what happened before this wait began: already in the view
            view = self.get(job_id)
            if callback:
                callback(view, None)
            while not view.ended:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise errors.WaitTimeout(f"job {job_id} had not ended after {timeout_s:.0f} s: it is {view.status}")
                poll = int(max(1, min(LONG_POLL_S, remaining if remaining is not None else LONG_POLL_S)))
                found, cursor = self.events(job_id, after=cursor, wait_s=poll)
                for event in found:
                    view = _apply(view, event)
                    if callback:
                        callback(view, event)
                ended = any(e.get("type") in ("finished", "marked") for e in found)
                if ended or not found or (view.status == "queued" and time.monotonic() - last_view > 5):
                    view = self.get(job_id)  # its status (and queue position) as the API says
                    last_view = time.monotonic()
                    if callback:
                        callback(view, None)
            return Job({**view, **self.result(job_id)})
        finally:
            if reporter:
                reporter.close()

    def cancel(self, job_id: str, *, wait: bool = False, timeout_s: float | None = 60.0) -> Job:
        """Cancel a job. Returns its view with ``cancel`` saying what happened: ``cancelled`` (it was
        queued), ``cancelling`` (it runs: its worker stops it) or ``already_finished``.

        With ``wait``, a job being cancelled is followed until it ends (a long poll, at most
        ``timeout_s``) and its ended view is returned: ``status`` ``cancelled``, or the status it reached
        on its own before its worker could stop it, with ``cancel_outcome`` ``too_late``. Raises
        :class:`~c3render_client.errors.WaitTimeout` when it has not ended by then."""
        answer = Job(self.request("POST", f"/jobs/{job_id}/cancel"))
        if not wait or answer.get("cancel") != "cancelling":
            return answer
        return Job({**self.wait(job_id, timeout_s=timeout_s), "cancel": "cancelling"})

    def retry(self, job_id: str, *, idempotency_key: str | None = None) -> Job:
        """A new job with the input of a failed, cancelled or timed-out one; sent again after a dropped
        connection, it is still one job (its own Idempotency-Key)."""
        return Job(self.request("POST", f"/jobs/{job_id}/retry",
                                headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())}))

    def delete(self, job_id: str) -> None:
        self.request("DELETE", f"/jobs/{job_id}")

    def list(self, *, status: str | None = None, job_type: str | None = None, page_size: int = 50,
             limit: int | None = None, **filters: str) -> Iterator[Job]:
        """Jobs, newest first, across every page (up to ``limit``)."""
        params: dict[str, Any] = {"limit": page_size, **filters}
        if status:
            params["status"] = status
        if job_type:
            params["type"] = job_type
        seen = 0
        while True:
            page = self.request("GET", "/jobs", params=params)
            for job in page["jobs"]:
                yield Job(job)
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    # -- files -----------------------------------------------------------------------------------------

    def upload(self, path: str | os.PathLike[str], content_type: str | None = None) -> str:
        """Upload a local file (straight to the bucket); returns what an input field takes (``upload://…``)."""
        file = Path(path)
        kind = content_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        made = self.request("POST", "/uploads", json_body={"filename": file.name, "content_type": kind,
                                                           "size": file.stat().st_size})
        # A plain PUT, not this session's: the URL is presigned and the API key is not for the storage's eyes.
        try:
            with file.open("rb") as body:
                reply = requests.put(made["upload_url"], data=body, headers=made["upload_headers"],
                                     timeout=max(self.timeout_s, 600))
        except requests.RequestException as err:
            raise errors.ConnectionFailed(f"uploading {file} failed: {err}") from err
        if reply.status_code >= 300:
            raise errors.C3RenderError(f"uploading {file} failed: HTTP {reply.status_code} {reply.text[:200]}")
        return str(made["url"])

    def download(self, job: Job | str, path: str | os.PathLike[str], *, file: str | None = None) -> Path:
        """Write the job's result file (or one of its ``files`` by name: ``srt``, ``vtt`` ...; a text
        result as text) to ``path``."""
        job_id = job if isinstance(job, str) else job["id"]
        result = self.result(job_id)
        target = Path(path)
        if file:
            url = (result.get("files") or {}).get(file)
            if not url:
                raise errors.C3RenderError(f"job {job_id} has no {file} file (it has: "
                                           f"{', '.join(result.get('files') or {}) or 'none'})")
        elif result.get("result_url"):
            url = result["result_url"]
        elif result.get("text") is not None:
            target.write_text(str(result["text"]) + "\n")
            return target
        else:
            raise errors.C3RenderError(f"job {job_id} has no result: {result.get('error') or result.get('status')}")
        # A plain GET: the URL is presigned; the API key is not for the storage's eyes.
        partial = target.with_name(f".{target.name}.part")
        try:
            with requests.get(url, stream=True, timeout=max(self.timeout_s, 600)) as got:
                if got.status_code >= 300:
                    raise errors.C3RenderError(f"downloading {job_id}'s result failed: HTTP {got.status_code}")
                with partial.open("wb") as out:
                    for chunk in got.iter_content(1 << 20):
                        out.write(chunk)
            partial.replace(target)
        except requests.RequestException as err:
            raise errors.ConnectionFailed(f"downloading {job_id}'s result failed: {err}") from err
        except OSError as err:
            raise errors.C3RenderError(f"cannot write {target}: {err.strerror or err}") from err
        finally:
            partial.unlink(missing_ok=True)
        return target

    def _input(self, name: str, value: Any) -> Any:
        """A local file given where an input is taken becomes an upload."""
        if name not in INPUT_FIELDS or not isinstance(value, (str, os.PathLike)):
            return value
        text = os.fspath(value)
        if "://" in text or text.startswith("data:"):
            return text  # a URL: the API judges it
        if not Path(text).is_file():
            raise errors.Misconfigured(f"{name}: {text}: no such file (give a file, or an http(s) URL)")
        return self.upload(text)


_NOT_CONNECTED = tuple(getattr(urllib3.exceptions, name) for name in
                       ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError")
                       if hasattr(urllib3.exceptions, name))


def _never_sent(err: requests.ConnectionError) -> bool:
    """The connection was never made (refused, no route, DNS): the request cannot have reached the API.
    requests wraps urllib3's MaxRetryError, whose ``reason`` says what failed."""
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return isinstance(err, requests.ConnectTimeout) or isinstance(reason, _NOT_CONNECTED)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _apply(view: Job, event: dict[str, Any]) -> Job:
    """The job view as an event changes it (status and progress), until the API is asked again."""
    kind = event.get("type")
    updated = Job(view)
    if kind == "started":
        updated["status"] = "running"
    elif kind == "progress" and isinstance(event.get("progress"), (int, float)):
        updated["progress"] = event["progress"]
    elif kind in ("finished", "marked") and event.get("status"):
        updated["status"] = event["status"]
    return updated


def _report(progress: Any, job: Job, event: dict[str, Any] | None) -> None:
    if progress is True:
        reporter = _Progress(True)
        reporter.update(job, event)
        reporter.close()
    elif callable(progress):
        progress(job, event)


class _Progress:
    """A progress bar on stderr (status, queue position, progress, elapsed), or plain lines when stderr
    is not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.display = ProgressDisplay() if enabled else None

    def update(self, job: Job, event: dict[str, Any] | None) -> None:
        if self.display:
            self.display.update(job, event)

    def close(self) -> None:
        if self.display:
            self.display.close()
