"""The API's front: what the routes call, and what they serve.

Owns the service facade and its parts by resource (jobs; files and voices; keys and usage; nodes and
health), the backends' wiring, the v1 compatibility answers, the OpenAPI document, the docs and the
dashboard's static files, and the key administration command (``python -m chalicelib.api.cli``).

May import every other room of chalicelib; nothing in chalicelib imports it (app.py and wsgi.py do).
"""
