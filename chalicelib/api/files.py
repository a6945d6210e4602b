"""Files in and out, behind the routes: uploads, inline data, a job's inputs, voices, lasting links.

- ``create_upload``: a record and a presigned PUT; the bytes go straight to the bucket.
- ``resolve_inputs`` (every submit): a ``data:`` URI becomes an upload of the key (so no view,
  list or log ever carries its base64); an ``upload://`` must be the key's own, of the field's
  kind, and is held until the job's deadline; a ``voice_id`` names a clip of the key's library;
  any other URL passes the SSRF guard. What the worker reads from the bucket is recorded with
  the job (``inputs``), so it never fetches those over HTTP.
- Voices: a clip and its transcript copied to ``voices/`` (a voice outlives the URL it came from).
"""
from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable
from typing import Any

from chalicelib.errors import FieldProblem, NotFound, ValidationError
from chalicelib.files.storage import ObjectStorage, voice_key
from chalicelib.files.uploads import DATA_SCHEME, UPLOAD_SCHEME, Upload, UploadStore, extension, kind_of, parse_data_uri
from chalicelib.files.voices import Voice, VoiceStore
from chalicelib.jobs.schemas import Field, accepted_names, no_rule, parse_fields
from chalicelib.jobs.spec import JobSpec
from chalicelib.security.filelinks import FileLinks
from chalicelib.security.safehttp import FetchError, TooLarge, UrlPolicy, fetch
from chalicelib.security.urlpolicy import UrlRefused, check_field
from chalicelib.settings import Settings

FILE_REDIRECT_TTL_S = 900  # a lasting link redirects to a URL presigned for this long
UPLOAD_FIELDS = (
    Field("filename", "string", "The file's name (kept, made safe, in the object's key).", required=True,
          max_length=255, nonblank=True),
    Field("content_type", "string", "Its media type: audio/* or video/* for audio inputs, image/* for images.",
          required=True, max_length=100, pattern=r"^(audio|video|image)/[A-Za-z0-9.+-]+$"),
    Field("size", "integer", "Its size in bytes; the upload URL accepts exactly this many (at most MAX_IMAGE_BYTES "
          "for an image, MAX_AUDIO_BYTES for audio or video).", required=True, minimum=1),
)
VOICE_FIELDS = (
    Field("name", "string", "What you call the voice.", required=True, max_length=100, nonblank=True),
    Field("audio_url", "url", "The clip: an upload (upload://ID), a data: URI or an http(s) URL.", required=True,
          media="audio"),
    Field("audio_text", "string", "What the clip says.", required=True, max_length=1000, nonblank=True),
)


class Files:
    def __init__(self, *, settings: Settings, uploads: UploadStore, voices: VoiceStore, links: FileLinks,
                 storage: Callable[[], ObjectStorage]) -> None:
        self.settings = settings
        self.uploads = uploads
        self.voices = voices
        self.links = links
        self._storage = storage

    @property
    def storage(self) -> ObjectStorage:
        return self._storage()

    def cap(self, kind: str) -> int:
        """Bytes an input of this kind may have: the same cap the worker applies when it reads it."""
        return self.settings.max_image_bytes if kind == "image" else self.settings.max_audio_bytes

    def file_url(self, token: str) -> str:
        """A lasting result link's object, as a URL presigned now. Raises NotFound or LinkExpired (410)."""
        key = self.links.resolve(token)
        if not key.startswith("results/") or self.storage.head(key) is None:
            raise NotFound("the file is gone: its job's results were deleted or expired")
        return self.storage.presign(key, ttl_s=FILE_REDIRECT_TTL_S)

    # -- uploads --------------------------------------------------------------------------------

    def create_upload(self, body: Any, *, owner: str) -> dict[str, Any]:
        """A new upload: ``{id, url, upload_url, upload_headers, expires_at, ...}``. Raises ValidationError,
        UploadQuotaExceeded (429)."""
        params = parse_fields(UPLOAD_FIELDS, accepted_names(UPLOAD_FIELDS), no_rule, body, common=False)
        kind = kind_of(params["content_type"])
        if kind is None:
            raise ValidationError([FieldProblem("content_type", "must be audio/*, video/* or image/*")])
        if params["size"] > self.cap(kind):
            raise ValidationError([FieldProblem("size", f"must be at most {self.cap(kind)} bytes for {kind}")])
        upload = self.uploads.create(owner=owner, filename=params["filename"], content_type=params["content_type"],
                                     size=params["size"])
        url = self.storage.presign_put(upload.key, content_type=upload.content_type, size=upload.size,
                                       ttl_s=min(self.settings.upload_ttl_s, 3600))
        return {**upload.public(), "upload_url": url,
                "upload_headers": {"Content-Type": upload.content_type, "Content-Length": str(upload.size)}}

    def upload_view(self, upload_id: str, *, owner: str) -> dict[str, Any]:
        upload = self._own_upload(upload_id, owner)
        stored = self.storage.head(upload.key)
        return {**upload.public(), "uploaded": stored is not None}

    def _own_upload(self, upload_id: str, owner: str) -> Upload:
        upload = self.uploads.get(upload_id)
        if upload.owner != owner:
            raise NotFound(f"no upload {upload_id}")  # another key's upload does not exist for you
        return upload

    def store_inline(self, value: str, field: str, *, kind: str, owner: str) -> Upload:
        """A ``data:`` URI's bytes, stored as an upload of ``owner``. Raises ValidationError naming ``field``."""
        data = parse_data_uri(value, field, max_bytes=self.cap(kind))
        if kind_of(data.content_type) != kind:
            raise ValidationError([FieldProblem(field, f"the data URI holds {data.content_type}; "
                                                f"{field} takes {kind}")])
        upload = self.uploads.create(owner=owner, filename=f"inline{extension(data.content_type)}",
                                     content_type=data.content_type, size=len(data.data))
        self.storage.put_bytes(upload.key, data.data, data.content_type)
        return upload

    def usable_upload(self, value: str, field: str, *, kind: str, owner: str, until: float) -> Upload:
        """The key's upload an ``upload://ID`` names, held until ``until``. Raises ValidationError naming ``field``."""
        upload_id = value.removeprefix(UPLOAD_SCHEME)
        try:
            upload = self._own_upload(upload_id, owner)
        except NotFound as err:
            raise ValidationError([FieldProblem(field, f"no upload {upload_id} of this key")]) from err
        if upload.kind != kind:
            raise ValidationError([FieldProblem(field, f"upload {upload_id} is {upload.content_type}; "
                                                f"{field} takes {kind}")])
        if upload.expires_at <= time.time():
            raise ValidationError([FieldProblem(field, f"upload {upload_id} has expired")])
        return self.uploads.hold(upload, until=until)

    # -- a job's inputs ------------------------------------------------------------------------

    def resolve_inputs(self, spec: JobSpec, params: dict[str, Any], *, owner: str,
                       until: float) -> dict[str, dict[str, str]]:
        """Check every URL the job names and find the bucket objects among them (see the module's doc).
        Returns field -> ``{key, kind}``; rewrites data URIs in ``params`` to their uploads. Raises
        ValidationError naming the field."""
        objects: dict[str, dict[str, str]] = {}
        for field in spec.url_fields:
            value = params.get(field.name)
            if not value:
                continue
            if field.media and value.startswith(DATA_SCHEME):
                value = params[field.name] = self.store_inline(value, field.name, kind=field.media, owner=owner).url
            if field.media and value.startswith(UPLOAD_SCHEME):
                upload = self.usable_upload(value, field.name, kind=field.media, owner=owner, until=until)
                objects[field.name] = {"key": upload.key, "kind": field.media}
            else:
                check_field(field.name, value, allow_private=self.settings.allow_private_urls,
                            allow_hosts=self.settings.url_allow_hosts)
        if params.get("voice_id"):
            try:
                voice = self.voices.get(params["voice_id"], owner=owner)
            except NotFound as err:
                raise ValidationError([FieldProblem("voice_id", f"no voice {params['voice_id']} "
                                                                "in this key's library")]) from err
            objects["reference_audio_url"] = {"key": voice.key, "kind": "audio"}
            params["reference_text"] = voice.audio_text
        return objects

    # -- voices ---------------------------------------------------------------------------------

    def create_voice(self, body: Any, *, owner: str) -> dict[str, Any]:
        params = parse_fields(VOICE_FIELDS, accepted_names(VOICE_FIELDS), no_rule, body, common=False)
        voice_id = VoiceStore.new_id()
        source = params["audio_url"]
        if source.startswith(DATA_SCHEME):
            data = parse_data_uri(source, "audio_url", max_bytes=self.cap("audio"))
            content_type, size = data.content_type, len(data.data)
            key = voice_key(owner, voice_id, extension(content_type))
            self.storage.put_bytes(key, data.data, content_type)
        elif source.startswith(UPLOAD_SCHEME):
            upload = self.usable_upload(source, "audio_url", kind="audio", owner=owner, until=0)
            stored = self.storage.head(upload.key)
            if stored is None:
                raise ValidationError([FieldProblem("audio_url", f"upload {upload.id} was never uploaded")])
            content_type, size = upload.content_type, stored.size
            key = voice_key(owner, voice_id, extension(content_type))
            self.storage.copy(upload.key, key)
        else:
            content_type, clip = self._fetch_clip(source)
            size = len(clip)
            key = voice_key(owner, voice_id, extension(content_type))
            self.storage.put_bytes(key, clip, content_type)
        voice = self.voices.add(Voice(id=voice_id, owner=owner, name=params["name"], key=key,
                                      audio_text=params["audio_text"], content_type=content_type, size=size,
                                      created_at=VoiceStore.now()))
        return voice.public()

    def _fetch_clip(self, url: str) -> tuple[str, bytes]:
        """The clip at an http(s) URL, through the SSRF guard and the audio size cap."""
        check_field("audio_url", url, allow_private=self.settings.allow_private_urls,
                    allow_hosts=self.settings.url_allow_hosts)
        try:
            fetched = fetch(url, policy=UrlPolicy(self.settings.allow_private_urls, self.settings.url_allow_hosts),
                            max_bytes=self.cap("audio"), timeout_s=self.settings.fetch_timeout_s)
        except (UrlRefused, TooLarge, FetchError) as err:
            raise ValidationError([FieldProblem("audio_url", f"the clip {err}")]) from err
        content_type = fetched.content_type.split(";")[0].strip().lower()
        if kind_of(content_type) != "audio":
            content_type = mimetypes.guess_type(url.split("?")[0])[0] or "application/octet-stream"
        if kind_of(content_type) != "audio":
            raise ValidationError([FieldProblem("audio_url", f"the clip is not audio ({content_type})")])
        return content_type, fetched.data

    def delete_voice(self, voice_id: str, *, owner: str) -> None:
        voice = self.voices.delete(voice_id, owner=owner)
        self.storage.delete(voice.key)
