"""``c3render``: run jobs and look after them from a shell.

    c3render run csm --text "Hello" -o hello.mp3
    c3render run whisper --audio ./talk.mp3 --format srt -o talk.srt
    c3render run portrait --image face.jpg --text "Hi there." -o talk.mp4
    c3render run analyze --image photo.png
    c3render jobs [--status S] [--type T] [--limit N] [--full-ids]
    c3render status ID | wait ID | result ID | retry ID | delete ID
    c3render cancel ID [--no-wait] [--timeout S]
    c3render events ID [--follow]
    c3render download ID -o FILE [--format srt]
    c3render webhooks verify REQUEST.json [--secret whsec_...]

An ID is a job's whole id or its start: the 8 characters ``c3render jobs`` shows will do while they
start no other job's id. Where the API is: ``--url``/``--key``, else ``C3RENDER_URL``/
``C3RENDER_API_KEY``, else the config file (``C3RENDER_CONFIG``), else the running local stack's
``.run/stack.json``. ``--json`` on any verb: the answer's JSON alone on stdout (progress and messages on
stderr).

Exit codes: 0 success; 1 the job failed, the API refused the request (4xx: no such job too), --timeout
passed (the job goes on), or a cancel came too late (the job ended on its own first); 2 a usage error
(an ID that starts several jobs' ids, an unknown job type), or the API unreachable or failing (5xx);
130 interrupted. Ctrl-C, at any moment, stops c3render at once; while it waits for a job, it first asks
whether to cancel the job, and if so waits for the job to stop and says whether the cancel was in time.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from c3render_client import errors
from c3render_client.api import Client, Job
from c3render_client.listing import job_row, render
from c3render_client.progress import describe
from c3render_client.webhooks import verify_webhook

EXT = {"csm": "mp3", "portrait": "mp4"}
STATUSES = "queued, running, success, failed, cancelled, timed_out"
CANCEL_WAIT_S = 60.0  # how long `cancel` (and Ctrl-C, y) waits for a running job to stop, by default


class Usage(Exception):
    """A usage error (exit code 2)."""


class _VerbParser(argparse.ArgumentParser):
    """A verb's parser: an option it does not know is its own error, told with its own usage (argparse
    leaves a verb's unknown options to the top-level parser, whose usage says nothing of the verb's).
    ``passthrough``: a verb that takes whatever follows it (``keys``, whose arguments are not ours)."""

    def __init__(self, *args: Any, passthrough: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passthrough = passthrough

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if self.passthrough:
            return parsed, []
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _options(defaults: bool) -> _VerbParser:
    """--url, --key and --json, taken before the verb or after it. The verbs' copies default to
    SUPPRESS, so an option given before the verb is not overwritten by the verb's default."""
    common = _VerbParser(add_help=False)
    keep: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    common.add_argument("--url", help="the API (default: C3RENDER_URL, the config file, or .run/stack.json)",
                        **keep)
    common.add_argument("--key", help="the API key (default: C3RENDER_API_KEY, ...)", **keep)
    common.add_argument("--json", action="store_true", help="print the answer's JSON alone on stdout", **keep)
    return common


def _parser() -> argparse.ArgumentParser:
    common = _options(defaults=False)
    parser = argparse.ArgumentParser(prog="c3render", description="Run and follow C3 Render jobs.",
                                     parents=[_options(defaults=True)])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_VerbParser)
    run = verbs.add_parser("run", parents=[common], help="submit a job and wait for it, with progress")
    run.add_argument("type", help="the job type: csm, whisper, portrait, analyze (or another the API serves)")
    run.add_argument("--text", help="csm, portrait: what to say")
    run.add_argument("--monologue", action="append", help="csm: a sentence (repeat for more)")
    run.add_argument("--audio", help="whisper, portrait: the audio; csm: a clip of the voice to clone (a file or URL)")
    run.add_argument("--audio-text", help="csm: what the voice clip says")
    run.add_argument("--image", help="portrait, analyze: the image (a file or URL)")
    run.add_argument("--voice", help="csm, portrait: random, conversational_a, conversational_b, clone")
    run.add_argument("--voice-id", help="csm, portrait: a voice of your library")
    run.add_argument("--prompt", help="analyze: the question")
    run.add_argument("--model", help="whisper: tiny ... large-v3; analyze: the vision model")
    run.add_argument("--language", help="whisper: the language (empty: detect)")
    run.add_argument("--task", help="whisper: transcribe or translate")
    run.add_argument("--notify-url", help="a webhook for when it ends")
    run.add_argument("--metadata", help="a JSON object of yours, kept with the job")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="any other field (VALUE as JSON when it parses, else text)")
    run.add_argument("-o", "--output", type=Path, help="where to write the result (file, transcript or text)")
    run.add_argument("--format", help="whisper: write this file of the result instead (srt, vtt, txt, json)")
    run.add_argument("--no-wait", action="store_true", help="submit, print the job, do not wait")
    run.add_argument("--timeout", type=float, help="give up waiting after this many seconds (the job goes on)")
    jobs = verbs.add_parser("jobs", parents=[common], help="your jobs, newest first")
    jobs.add_argument("--status", help=f"only the jobs with this status: {STATUSES}")
    jobs.add_argument("--type", help="only the jobs of this type: csm, whisper, portrait, analyze ...")
    jobs.add_argument("--limit", type=int, default=20, help="at most this many jobs (default: 20)")
    jobs.add_argument("--full-ids", action="store_true",
                      help="whole ids (default: their first 8 characters, which every verb takes)")
    id_help = "the job's id, or its start (the 8 characters c3render jobs shows)"
    for name, text in (("status", "a job's status"), ("wait", "wait for a job to end, with progress"),
                       ("result", "an ended job's result"), ("retry", "a new job with the input of a failed one"),
                       ("delete", "delete a job")):
        verbs.add_parser(name, parents=[common], help=text).add_argument("id", help=id_help)
    cancel = verbs.add_parser("cancel", parents=[common],
                              help="cancel a job; a running one is waited for, to say whether it stopped in time")
    cancel.add_argument("id", help=id_help)
    cancel.add_argument("--no-wait", action="store_true", help="ask for the cancel, do not wait for the job to stop")
    cancel.add_argument("--timeout", type=float, default=CANCEL_WAIT_S,
                        help=f"wait at most this many seconds for a running job to stop (default: {CANCEL_WAIT_S:.0f})")
    events = verbs.add_parser("events", parents=[common], help="a job's timeline")
    events.add_argument("id", help=id_help)
    events.add_argument("--follow", action="store_true", help="keep printing events until the job ends")
    download = verbs.add_parser("download", parents=[common], help="write a job's result to a file")
    download.add_argument("id", help=id_help)
    download.add_argument("-o", "--output", type=Path, required=True)
    download.add_argument("--format", help="one of the result's files (whisper: srt, vtt, txt, json)")
    hooks = verbs.add_parser("webhooks", parents=[common], help="webhook helpers")
    hook_verbs = hooks.add_subparsers(dest="hook_verb", required=True, metavar="VERB")
    verify = hook_verbs.add_parser("verify", parents=[common],
                                   help="say whether a saved webhook request's signature holds")
    verify.add_argument("request", type=Path, help='a JSON file: {"headers": {...}, "body": "..."}')
    verify.add_argument("--secret", help="whsec_... (default: C3RENDER_WEBHOOK_SECRET, or the stack's)")
    verify.add_argument("--any-time", action="store_true", help="do not check the timestamp's age")
    # ./c3render sends `keys` to the operator commands (chalicelib.api.cli) before this parser sees it;
    # listed here so that --help tells of them.
    verbs.add_parser("keys", add_help=False, passthrough=True,
                     help="operator commands: API keys, in the service's Redis (./c3render keys --help)")
    return parser


def _out(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2) if args.json else human)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    fields = {"text": args.text, "monologue": args.monologue, "audio_text": args.audio_text,
              "image_url": args.image, "voice": args.voice, "voice_id": args.voice_id, "prompt": args.prompt,
              "model": args.model, "language": args.language, "task": args.task, "notify_url": args.notify_url}
    if args.audio:
        fields["audio_url"] = args.audio  # csm reads it as the clip to clone (its alias of reference_audio_url)
    if args.metadata:
        try:
            fields["metadata"] = json.loads(args.metadata)
        except ValueError as err:
            raise Usage(f"--metadata is not JSON: {err}") from None
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise Usage(f"-p takes NAME=VALUE, got {item!r}")
        try:
            fields[name] = json.loads(value)
        except ValueError:
            fields[name] = value
    return {k: v for k, v in fields.items() if v is not None}


def _ask(question: str) -> bool:
    """A yes/no question on stderr, answered by a line on stdin: y or yes. No answer (stdin closed) or
    Ctrl-C again: no. Off a terminal the question is a whole line, for a program reading stderr."""
    print(f"\n{question} " if sys.stderr.isatty() else question, file=sys.stderr,
          end="" if sys.stderr.isatty() else "\n", flush=True)
    try:
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    except (KeyboardInterrupt, OSError):
        return False


def _wait(client: Client, job_id: str, args: argparse.Namespace) -> Job:
    """The ended job, waited for with progress. Ctrl-C asks whether to cancel the job (then exits:
    130, or 1 when the cancel came too late)."""
    try:
        return client.wait(job_id, progress=True, timeout_s=getattr(args, "timeout", None))
    except KeyboardInterrupt:
        pass  # out of the except block: a Ctrl-C while asking is not "during handling of" this one
    if not _ask(f"interrupted. Cancel job {job_id}? [y/N]"):
        _say(f"job {job_id} goes on: c3render wait {job_id}")
        raise SystemExit(130)
    code, message, _ = _cancel_and_tell(client, job_id, timeout_s=CANCEL_WAIT_S)
    _say(message)
    raise SystemExit(130 if code == 0 else code)


def _cancel_and_tell(client: Client, job_id: str, *, timeout_s: float | None) -> tuple[int, str, Job]:
    """Cancel the job and, unless ``timeout_s`` is None, wait for a running one to stop: ``(exit code,
    what to say, the job's last view)``. 0: it is cancelled (or, not waited for, cancelling); 1: it
    ended on its own, the cancel too late, or had already ended; 130: Ctrl-C stopped the wait."""
    job = client.cancel(job_id)
    if job.get("cancel") == "cancelled":
        return 0, f"job {job_id} cancelled", job
    if job.get("cancel") == "already_finished":
        return 1, f"job {job_id} had already ended: {job.status}; nothing to cancel", job
    if timeout_s is None:
        return 0, f"job {job_id} cancelling: its worker stops it (c3render wait {job_id})", job
    _say(f"cancelling job {job_id}: waiting for it to stop (at most {timeout_s:.0f} s; Ctrl-C stops waiting)")
    try:
        job = client.wait(job_id, timeout_s=timeout_s)
    except KeyboardInterrupt:
        return 130, f"stopped waiting: job {job_id} is cancelling (c3render status {job_id})", job
    if job.status == "cancelled":
        return 0, f"job {job_id} cancelled", job
    after = f" (its result: c3render result {job_id})" if job.status == "success" else ""
    return 1, f"job {job_id}: the cancel came too late, the job ended {job.status} first{after}", job


def _download(client: Client, job_id: str, output: Path, file: str | None) -> None:
    try:
        client.download(job_id, output, file=file)
    except KeyboardInterrupt:
        _say(f"\nc3render: interrupted: {output} not written (c3render download {job_id} -o {output})")
        raise SystemExit(130) from None
    _say(f"wrote {output}")


def _finish(client: Client, job: Job, args: argparse.Namespace, output: Path | None, file: str | None) -> int:
    if job.status != "success":
        _out(args, job, f"job {job.id} {job.status}: {job.error or 'no reason given'}")
        return 1
    if output is not None:
        _download(client, job.id, output, file)
    if args.json:
        print(json.dumps(job, indent=2))
    elif output is None:
        if job.get("text") is not None and not file:
            print(job["text"])
        elif file:
            print((job.get("files") or {}).get(file, ""))
        else:
            print(job.get("result_url", ""))
    return 0


def _run(client: Client, args: argparse.Namespace) -> int:
    params = _params(args)
    if args.output is not None and not args.output.resolve().parent.is_dir():
        raise Usage(f"-o {args.output}: no such directory")
    if args.format and args.format not in ("srt", "vtt", "txt", "json"):
        raise Usage("--format is one of srt, vtt, txt, json")
    try:
        job = client.submit(args.type, **params)
    except KeyboardInterrupt:
        _say("\nc3render: interrupted while submitting: the job may have been created (c3render jobs)")
        return 130
    if args.no_wait:
        _out(args, job, f"{job.id} {describe(job)}")
        return 0
    job = _wait(client, job.id, args) if not job.ended else Job({**job, **client.result(job.id)})
    output = args.output
    if output is None and args.type in EXT and not args.json:
        output = Path(f"{job.id}.{EXT[args.type]}")
    return _finish(client, job, args, output, args.format)


def _jobs(client: Client, args: argparse.Namespace) -> int:
    found = list(client.list(status=args.status, job_type=args.type, limit=args.limit,
                             page_size=min(100, max(1, args.limit))))
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    # On a terminal (or with COLUMNS), the table fits its width; into a file or a pipe, lines are whole.
    width = os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else None
    if os.environ.get("COLUMNS", "").isdigit():
        width = int(os.environ["COLUMNS"])
    now = time.time()
    for line in render([job_row(job, full_id=args.full_ids, now_s=now) for job in found], width):
        print(line)
    return 0


def _events(client: Client, args: argparse.Namespace) -> int:
    found = client.follow(args.id) if args.follow else iter(client.events(args.id)[0])
    for event in found:
        if args.json:
            print(json.dumps(event), flush=True)
        else:
            print(f"{event.get('at', '')}  {event.get('type', ''):15} {event.get('message', '')}", flush=True)
    return 0


def _verify(args: argparse.Namespace) -> int:
    secret = args.secret or os.environ.get("C3RENDER_WEBHOOK_SECRET")
    if not secret:
        from c3render_client.api import find_stack

        stack = find_stack()
        if stack is not None and stack.exists():
            secret = json.loads(stack.read_text()).get("webhook_secret")
    if not secret:
        raise Usage("give --secret (or set C3RENDER_WEBHOOK_SECRET)")
    try:
        saved = json.loads(args.request.read_text())
        body, headers = saved["body"], saved["headers"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise Usage(f"{args.request}: expected a JSON file with 'headers' and 'body' ({err})") from None
    try:
        if not isinstance(body, str):
            raise Usage(f"{args.request}: 'body' must be the request's body as received, a string (a parsed "
                        "object cannot be re-serialised byte for byte)")
        payload = verify_webhook(body, headers, secret, tolerance_s=float("inf") if args.any_time else 300)
    except errors.WebhookVerificationError as err:
        _out(args, {"valid": False, "reason": str(err)}, f"invalid: {err}")
        return 1
    _out(args, {"valid": True, "payload": payload}, f"valid: {json.dumps(payload)}")
    return 0


def _status(client: Client, args: argparse.Namespace) -> int:
    job = client.get(args.id)
    _out(args, job, f"{job.id} {job.type} {describe(job)} {float(job.progress or 0):.0%}"
         + (f": {job.error}" if job.error else ""))
    return 0


def _result(client: Client, args: argparse.Namespace) -> int:
    result = client.result(args.id)
    _out(args, result, result.get("result_url") or result.get("text") or result.get("error") or "")
    return 0 if result.get("status") == "success" else 1


def _cancel(client: Client, args: argparse.Namespace) -> int:
    code, message, job = _cancel_and_tell(client, args.id, timeout_s=None if args.no_wait else args.timeout)
    _out(args, job, message)
    return code


def _retry(client: Client, args: argparse.Namespace) -> int:
    job = client.retry(args.id)
    _out(args, job, f"{job.id} queued (a retry of {args.id})")
    return 0


def _delete(client: Client, args: argparse.Namespace) -> int:
    client.delete(args.id)
    _out(args, {"id": args.id, "deleted": True}, f"{args.id} deleted")
    return 0


def _download_verb(client: Client, args: argparse.Namespace) -> int:
    _download(client, args.id, args.output, args.format)
    return 0


VERBS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "run": _run, "jobs": _jobs, "events": _events, "download": _download_verb, "status": _status,
    "wait": lambda client, args: _finish(client, _wait(client, args.id, args), args, None, None),
    "result": _result, "cancel": _cancel, "retry": _retry, "delete": _delete,
}


def _resolve(client: Client, given: str) -> str:
    """The whole id of the job an ID names (a short id is the start of one)."""
    try:
        return client.resolve(given)
    except errors.AmbiguousJobId as err:
        shown = "\n".join(f"  {job.id}  {job.type}  {describe(job)}  {job.get('created_at', '')}"
                          for job in err.candidates)
        raise Usage(f"{err}:\n{shown}" + ("\n  ..." if err.more else "")) from None
    except errors.NotFound as err:
        _say(f"c3render: {err.message}")
        raise SystemExit(1) from None


def _dispatch(args: argparse.Namespace) -> int:
    if args.verb == "webhooks":
        return _verify(args)
    if args.verb == "keys":
        raise Usage("keys is an operator command (it writes to the service's Redis): run it as ./c3render keys "
                    "in the repository (./c3render keys --help)")
    client = Client(args.url, args.key)
    if getattr(args, "id", None) is not None:
        args.id = _resolve(client, args.id)
    return VERBS[args.verb](client, args)


def _take_ctrl_c() -> None:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt, even when c3render was started with SIGINT ignored:
    a shell script's background job inherits that, and Python then leaves it ignored, so Ctrl-C or
    ``kill -INT`` would not stop a wait."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    _take_ctrl_c()
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except Usage as err:
        _say(f"c3render: {err}")
        return 2
    except errors.UnknownJobType as err:
        _say(f"c3render: {err.message}")
        return 2
    except (errors.ConnectionFailed, errors.Misconfigured) as err:
        _say(f"c3render: {err}")
        return 2
    except errors.WaitTimeout as err:
        _say(f"c3render: {err} (the job goes on: c3render wait ID)")
        return 1
    except errors.APIError as err:
        if err.status >= 500:
            _say(f"c3render: the API is not available: {err}")
            return 2
        _say(f"c3render: the API refused: {err}")
        return 1
    except KeyboardInterrupt:
        _say("\nc3render: interrupted")
        return 130
    except BrokenPipeError:
        # the reader went away (c3render jobs --json | head): nothing more to say, and nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except errors.C3RenderError as err:
        _say(f"c3render: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
