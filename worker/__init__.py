"""The long-running worker: runner loop, engines, and (later) the GPU node pool."""
