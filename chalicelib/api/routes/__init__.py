"""The API's routes as Chalice blueprints, one per resource; ``app.py`` registers them."""
