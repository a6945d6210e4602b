"""One engine per job type: each module here names its class as ``ENGINE`` (see ``base``)."""
