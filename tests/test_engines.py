"""Real engines against the devnode (real small models): speech, transcripts, portraits, analyses."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from chalicelib.errors import EngineError
from devtools import servers
from tests.helpers import DEVNODE_KEY, Stack
from tests.media_fixtures import FileServer, probe, word_error_rate
from worker.engines.whisper import WhisperEngine

NODE_KEY = DEVNODE_KEY
SPEECH = "The quick brown fox jumps over the lazy dog. Every job should come back as the same words."


@pytest.fixture
def real(make_stack: Callable[..., Stack], devnode: servers.Server) -> Stack:
    stack = make_stack("redis", **servers.devnode_env(devnode, NODE_KEY), WORKER_LEASE_S="20")
    stack.start_api()
    stack.start_worker()
    return stack


def run(stack: Stack, job_type: str, body: dict[str, object], timeout_s: float = 90) -> dict[str, object]:
    reply = stack.submit(job_type, body)
    assert reply.status_code == 202, reply.text
    view = stack.wait_status(reply.json()["id"], {"success", "failed", "cancelled", "timed_out"}, timeout_s)
    result = stack.http.get(f"{stack.url}/result/{view['id']}").json()
    return {**view, **result}


def download(url: str, path: Path) -> Path:
    reply = requests.get(url, timeout=30)
    assert reply.status_code == 200
    path.write_bytes(reply.content)
    return path


def test_speech_round_trip(real: Stack, tmp_path: Path) -> None:
    speech = run(real, "csm", {"text": SPEECH})
    assert speech["status"] == "success", speech
    assert speech["node"] == real.env["STATIC_NODES"] and speech["gpu_seconds"] > 0
    mp3 = probe(download(str(speech["result_url"]), tmp_path / "speech.mp3"))
    assert mp3["audio_codec"] == "mp3" and mp3["duration"] > 2
    transcript = run(real, "whisper", {"audio_url": speech["result_url"], "model": "small"})
    assert transcript["status"] == "success", transcript
    wer = word_error_rate(SPEECH, str(transcript["text"]))
    assert wer <= 0.15, (wer, transcript["text"])
    assert set(transcript["files"]) == {"json", "txt", "srt", "vtt"}  # type: ignore[arg-type]
    srt = requests.get(transcript["files"]["srt"], timeout=10).text  # type: ignore[index]
    assert "-->" in srt and "fox" in srt.lower()
    assert transcript["segments"] and transcript["segments"][0]["end"] > 0  # type: ignore[index]


def test_portrait_from_audio_and_from_text(real: Stack, inputs: FileServer, tmp_path: Path) -> None:
    speech = run(real, "csm", {"text": "Hello, I am a portrait that speaks."})
    audio = probe(download(str(speech["result_url"]), tmp_path / "a.mp3"))
    video = run(real, "portrait", {"image_url": inputs.url("face.jpg"), "audio_url": speech["result_url"]})
    assert video["status"] == "success", video
    mp4 = probe(download(str(video["result_url"]), tmp_path / "v.mp4"))
    assert mp4["video_codec"] == "h264" and mp4["pix_fmt"] == "yuv420p" and mp4["audio_codec"] == "aac"
    assert abs(float(mp4["duration"]) - float(audio["duration"])) <= 0.5, (mp4, audio)  # type: ignore[arg-type]
    assert 0 < int(mp4["width"]) <= 1280 and 0 < int(mp4["height"]) <= 720  # type: ignore[call-overload]
    assert (mp4["width"], mp4["height"]) == (960, 720)  # 640x480 fitted inside 1280x720
    spoken = run(real, "portrait", {"image_url": inputs.url("face.jpg"), "text": "This one was written as text."})
    assert spoken["status"] == "success", spoken
    mp4 = probe(download(str(spoken["result_url"]), tmp_path / "t.mp4"))
    assert mp4["video_codec"] == "h264" and mp4["audio_codec"] == "aac" and float(mp4["duration"]) > 1


def test_analyze_names_real_properties(real: Stack, inputs: FileServer) -> None:
    analysis = run(real, "analyze", {"image_url": inputs.url("red.png"), "prompt": "What is in this picture?"})
    assert analysis["status"] == "success", analysis
    text = str(analysis["text"]).lower()
    for fact in ("200x200", "png", "red", "white", "no faces"):
        assert fact in text, (fact, text)


def test_cloning_sends_a_mono_clip_and_its_transcript(real: Stack, inputs: FileServer,
                                                      devnode: servers.Server) -> None:
    cloned = run(real, "csm", {"text": "Say this in my voice.", "audio_url": inputs.url("reference.wav"),
                               "audio_text": "A reference clip of my voice."})
    assert cloned["status"] == "success", cloned
    calls = requests.get(f"{devnode.url}/_devnode/calls", headers={"X-C3-API-KEY": NODE_KEY}, timeout=5).json()
    sent = [c for c in calls if c["service"] == "csm" and c["speaker_voice"] == "upload_voice"][-1]
    assert sent["speaker_text"] == "A reference clip of my voice."
    assert sent["speaker_audio"]["channels"] == 1  # the stereo clip was made mono
    assert abs(sent["speaker_audio"]["duration_s"] - 2.0) < 0.2
    assert sent["monologue"] == ["Say this in my voice."]


def test_cancelling_a_running_portrait_interrupts_comfyui(real: Stack, inputs: FileServer,
                                                          devnode: servers.Server) -> None:
    comfy = f"http://127.0.0.1:{devnode.comfy_port}"
    headers = {"X-C3-API-KEY": NODE_KEY}
    requests.post(f"{comfy}/_devnode/config", json={"render_delay_s": 30}, headers=headers, timeout=5)
    try:
        job = real.submit("portrait", {"image_url": inputs.url("face.jpg"), "text": "Cancel me before I finish."})
        job_id = job.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            queue = requests.get(f"{comfy}/queue", headers=headers, timeout=5).json()
            if queue["queue_running"]:
                break
            time.sleep(0.1)
        running_prompt = queue["queue_running"][0][1]
        real.http.post(f"{real.url}/jobs/{job_id}/cancel")
        view = real.wait_status(job_id, {"cancelled", "success", "failed"}, timeout_s=15)
        assert view["status"] == "cancelled"
        events = requests.get(f"{comfy}/_devnode/events", headers=headers, timeout=5).json()
        assert {"event": "interrupt", "running": running_prompt} in [
            {"event": e["event"], "running": e.get("running")} for e in events]
        deadline = time.monotonic() + 3
        while requests.get(f"{comfy}/queue", headers=headers, timeout=5).json()["queue_running"]:
            assert time.monotonic() < deadline, "ComfyUI still running the cancelled prompt"
            time.sleep(0.1)
    finally:
        requests.post(f"{comfy}/_devnode/config", json={"render_delay_s": 0}, headers=headers, timeout=5)


def test_bad_media_and_unreachable_inputs_fail_clearly(real: Stack, inputs: FileServer) -> None:
    text_file = run(real, "whisper", {"audio_url": inputs.url("notes.txt")})
    assert text_file["status"] == "failed" and text_file["error"] == (
        "audio_url: the file is not audio that can be decoded")
    missing = run(real, "whisper", {"audio_url": inputs.url("missing.mp3")})
    assert missing["status"] == "failed"
    assert str(missing["error"]).startswith("audio_url: ") and "HTTP 404" in str(missing["error"])
    dead = f"http://127.0.0.1:{servers.free_port()}/gone.png"
    unreachable = run(real, "analyze", {"image_url": dead})
    assert unreachable["status"] == "failed" and "image_url" in str(unreachable["error"])
    assert "could not be fetched" in str(unreachable["error"])
    assert text_file["attempt"] == 1  # the caller's fault is not retried


def test_wrong_node_key_is_refused_by_the_node(make_stack: Callable[..., Stack], devnode: servers.Server,
                                               inputs: FileServer) -> None:
    env = {**servers.devnode_env(devnode, "not-the-key"), "NODE_READY_TIMEOUT_S": "1", "MAX_ATTEMPTS": "1"}
    stack = make_stack("redis", **env)
    stack.start_api()
    stack.start_worker()
    failed = run(stack, "analyze", {"image_url": inputs.url("red.png")})
    assert failed["status"] == "failed" and "HTTP 401" in str(failed["error"])


def test_the_node_going_down_mid_job_fails_the_job_clearly(make_stack: Callable[..., Stack], log_dir: Path,
                                                           inputs: FileServer) -> None:
    doomed = servers.start_devnode(api_key=NODE_KEY, render_delay_s=30, log_dir=log_dir)
    try:
        stack = make_stack("redis", **servers.devnode_env(doomed, NODE_KEY), NODE_READY_TIMEOUT_S="1",
                           WORKER_LEASE_S="10")
        stack.start_api()
        stack.start_worker()
        job_id = stack.submit("portrait", {"image_url": inputs.url("face.jpg"), "text": "The node dies."}).json()["id"]
        stack.wait_status(job_id, {"running"}, timeout_s=30)
        time.sleep(2)
        doomed.kill()
        view = stack.wait_status(job_id, {"failed", "success"}, timeout_s=60)
        assert view["status"] == "failed" and view["attempt"] == 3
        assert "GPU node" in str(view["error"]), view["error"]
    finally:
        doomed.kill()


def test_whisper_error_shape_is_a_failure() -> None:
    with pytest.raises(EngineError, match="transcription failed: CUDA out of memory"):
        WhisperEngine._unpack(("Error: CUDA out of memory", []))
    assert WhisperEngine._unpack(("hello", ["/x.json"])) == ("hello", ["/x.json"])
