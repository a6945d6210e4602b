"""C3 Render: the API's library, also used by the worker."""
__version__ = "0.1.0"
