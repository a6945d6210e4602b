"""A stand-in for the first version's submit path (Flask + gunicorn, seed style):
parse JSON, check one field, HSET the job, LPUSH its id on queue:jobs. Used only
as the same-run baseline in bench/api_submit.py.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import redis
from flask import Flask, jsonify, request

app = Flask(__name__)
r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.post("/whisper")
def whisper():  # type: ignore[no-untyped-def]
    data = request.get_json()
    if not data or "audio_url" not in data:
        return jsonify({"error": "audio_url is required"}), 400
    job_id = str(uuid.uuid4())
    r.hset(f"job:{job_id}", mapping={"id": job_id, "type": "whisper", "status": "queued",
                                     "created_at": time.time(), "data": json.dumps(data)})
    r.lpush("queue:jobs", job_id)
    return jsonify({"id": job_id, "status": "queued"}), 202
