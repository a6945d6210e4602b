"""The engine seam: one engine per job type, ``run(job, node, ctx) -> Output``.

Engines only do the work and return what they made: text, files in
``ctx.workdir``, and extra result fields. The runner owns leases, cancellation,
time limits, the scratch directory, and storing the outputs (under
``results/<job id>/``) and recording them. Engines report progress, check
``ctx.check()`` at safe points, and raise :class:`InputError` (the caller's
fault) or :class:`NodeError` (the node's fault, retried) from
``chalicelib.errors``.

Each module in ``worker/engines/`` (and each ``JOB_PLUGINS`` module) names its
engine class as ``ENGINE``; the class says which job type it renders.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from chalicelib.jobs.models import Job
from chalicelib.jobs.spec import JobSpec
from worker.context import JobContext
from worker.engines.deps import EngineDeps
from worker.gpu.nodes import Node

RESULT = "result"  # the role of a job's main file: it becomes result_url


@dataclass(frozen=True)
class OutputFile:
    """A file an engine made. ``role`` "result" is the job's ``result_url``; any other role is
    listed under the result's ``files`` by that name."""

    path: Path
    content_type: str
    role: str = RESULT
    name: str = ""  # stored as results/<job id>/<name>; default: the file's own name

    @property
    def stored_name(self) -> str:
        return self.name or self.path.name


@dataclass
class Output:
    """What an engine returns."""

    text: str | None = None
    files: list[OutputFile] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # more result fields (duration_s, segments ...)


class Engine(ABC):
    """Renders the jobs of one type. ``job_type`` names its spec (chalicelib/jobs/types/)."""

    job_type: ClassVar[str]
    fetches_inputs: ClassVar[bool] = True  # the runner fetches the declared inputs into ctx.inputs first

    def __init__(self, deps: EngineDeps, spec: JobSpec) -> None:
        self.deps = deps
        self.spec = spec

    @property
    def needs_node(self) -> bool:
        """The runner leases a GPU node before calling :meth:`run` when the job type names a service."""
        return self.spec.service is not None

    @abstractmethod
    def run(self, job: Job, node: Node | None, ctx: JobContext) -> Output:
        """Do the work; returns the outputs, raises EngineError subclasses or Cancelled."""
