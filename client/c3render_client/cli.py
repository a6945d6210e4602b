"""``c3render``: run jobs and look after them from a shell.

    c3render run csm --text "Hello" -o hello.mp3
    c3render run whisper --audio ./talk.mp3 --format srt -o talk.srt
    c3render run portrait --image face.jpg --text "Hi there." -o talk.mp4
    c3render run analyze --image photo.png
    c3render jobs [--status S] [--type T] [--limit N]
    c3render status ID | wait ID | result ID | cancel ID | retry ID | delete ID
    c3render events ID [--follow]
    c3render download ID -o FILE [--format srt]
    c3render webhooks verify REQUEST.json [--secret whsec_...]

Where the API is: ``--url``/``--key``, else ``C3RENDER_URL``/``C3RENDER_API_KEY``, else the config file
(``C3RENDER_CONFIG``), else the running local stack's ``.run/stack.json``. ``--json`` on any verb: the
answer's JSON alone on stdout (progress and messages on stderr). Exit codes: 0 success; 1 the job failed,
the API refused the request (4xx) or --timeout passed (the job goes on); 2 a usage error, or the API
unreachable or failing (5xx); 130 interrupted. Ctrl-C while a job runs asks whether to cancel it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from c3render_client import errors
from c3render_client.api import Client, Job
from c3render_client.progress import describe
from c3render_client.webhooks import verify_webhook

EXT = {"csm": "mp3", "portrait": "mp4"}


class Usage(Exception):
    """A usage error (exit code 2)."""


def _options(defaults: bool) -> argparse.ArgumentParser:
    """--url, --key and --json, taken before the verb or after it. The verbs' copies default to
    SUPPRESS, so an option given before the verb is not overwritten by the verb's default."""
    common = argparse.ArgumentParser(add_help=False)
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
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = verbs.add_parser("run", parents=[common], help="submit a job and wait for it, with progress")
    run.add_argument("type", help="csm, whisper, portrait, analyze (or another type the API serves)")
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
    jobs.add_argument("--status")
    jobs.add_argument("--type")
    jobs.add_argument("--limit", type=int, default=20)
    for name, text in (("status", "a job's status"), ("wait", "wait for a job to end, with progress"),
                       ("result", "an ended job's result"), ("cancel", "cancel a job"),
                       ("retry", "a new job with the input of a failed one"), ("delete", "delete a job")):
        verbs.add_parser(name, parents=[common], help=text).add_argument("id")
    events = verbs.add_parser("events", parents=[common], help="a job's timeline")
    events.add_argument("id")
    events.add_argument("--follow", action="store_true", help="keep printing events until the job ends")
    download = verbs.add_parser("download", parents=[common], help="write a job's result to a file")
    download.add_argument("id")
    download.add_argument("-o", "--output", type=Path, required=True)
    download.add_argument("--format", help="one of the result's files (whisper: srt, vtt, txt, json)")
    hooks = verbs.add_parser("webhooks", parents=[common], help="webhook helpers")
    hook_verbs = hooks.add_subparsers(dest="hook_verb", required=True, metavar="VERB")
    verify = hook_verbs.add_parser("verify", parents=[common],
                                   help="say whether a saved webhook request's signature holds")
    verify.add_argument("request", type=Path, help='a JSON file: {"headers": {...}, "body": "..."}')
    verify.add_argument("--secret", help="whsec_... (default: C3RENDER_WEBHOOK_SECRET, or the stack's)")
    verify.add_argument("--any-time", action="store_true", help="do not check the timestamp's age")
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


def _wait(client: Client, job: Job, args: argparse.Namespace) -> Job:
    """Wait with progress; Ctrl-C asks whether to cancel the job (a line on stdin: y cancels it)."""
    try:
        return client.wait(job, progress=True, timeout_s=getattr(args, "timeout", None))
    except KeyboardInterrupt:
        _say(f"\ninterrupted. Cancel job {job['id']}? [y/N] ")
        try:
            answer = sys.stdin.readline().strip().lower()
        except (KeyboardInterrupt, OSError):
            answer = ""
        if answer in ("y", "yes"):
            client.cancel(job["id"])
            _say(f"job {job['id']} cancelled")
        else:
            _say(f"job {job['id']} goes on: c3render wait {job['id']}")
        raise SystemExit(130) from None


def _finish(client: Client, job: Job, args: argparse.Namespace, output: Path | None, file: str | None) -> int:
    if job.status != "success":
        _out(args, job, f"job {job.id} {job.status}: {job.error or 'no reason given'}")
        return 1
    if output is not None:
        client.download(job, output, file=file)
        _say(f"wrote {output}")
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
    job = client.submit(args.type, **params)
    if args.no_wait:
        _out(args, job, f"{job.id} {describe(job)}")
        return 0
    job = _wait(client, job, args) if not job.ended else Job({**job, **client.result(job.id)})
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
    from rich.console import Console
    from rich.table import Table

    table = Table("type", "status", "progress", "created", "GPU s", "error")
    table.add_column("id", no_wrap=True, min_width=36)  # whole: it is what the other verbs take
    for job in found:
        table.add_row(job.type, describe(job), f"{float(job.progress or 0):.0%}", job.get("created_at", ""),
                      f"{job.get('gpu_seconds') or 0:.1f}", (job.error or "")[:60], job.id)
    Console(soft_wrap=True).print(table)
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


def _dispatch(args: argparse.Namespace) -> int:
    if args.verb == "webhooks":
        return _verify(args)
    client = Client(args.url, args.key)
    if args.verb == "run":
        return _run(client, args)
    if args.verb == "jobs":
        return _jobs(client, args)
    if args.verb == "events":
        return _events(client, args)
    if args.verb == "download":
        client.download(args.id, args.output, file=args.format)
        _say(f"wrote {args.output}")
        return 0
    if args.verb == "status":
        job = client.get(args.id)
        _out(args, job, f"{job.id} {job.type} {describe(job)} {float(job.progress or 0):.0%}"
             + (f": {job.error}" if job.error else ""))
        return 0
    if args.verb == "wait":
        return _finish(client, _wait(client, client.get(args.id), args), args, None, None)
    if args.verb == "result":
        result = client.result(args.id)
        _out(args, result, result.get("result_url") or result.get("text") or result.get("error") or "")
        return 0 if result.get("status") == "success" else 1
    if args.verb == "cancel":
        job = client.cancel(args.id)
        _out(args, job, f"{job.id} {job.get('cancel', job.status)}")
        return 0
    if args.verb == "retry":
        job = client.retry(args.id)
        _out(args, job, f"{job.id} queued (a retry of {args.id})")
        return 0
    if args.verb == "delete":
        client.delete(args.id)
        _out(args, {"id": args.id, "deleted": True}, f"{args.id} deleted")
        return 0
    raise Usage(f"unknown verb {args.verb}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except Usage as err:
        _say(f"c3render: {err}")
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
