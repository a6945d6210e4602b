"""Job types that exist only in the tests, loaded through JOB_PLUGINS."""
