"""The code's shape: no import cycles, imports point down, settings are read and documented in one place."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from chalicelib.settings import env_sample
from devtools.servers import ROOT

PACKAGES = ("chalicelib", "worker", "devnode", "devtools", "bench", "tests")
TOP_MODULES = ("app", "wsgi")


def module_files() -> dict[str, Path]:
    """Every module of the project by dotted name (packages by their ``__init__``)."""
    found = {name: ROOT / f"{name}.py" for name in TOP_MODULES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int, bool]]:
    """(imported project module, line, at module level?) for every import in the file, nested ones too."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg.
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        for name in names:
            if name in modules:
                yield name, node.lineno, id(node) in top_level


def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: {target for target, _, _ in imports_of(path, modules)} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_anywhere() -> None:
    """Function-level imports count too, so none can hide a cycle."""
    assert cycles(graph()) == []


# The worker's layers, top down: a module may import its own layer and those below, never above.
WORKER_LAYERS = (
    ("worker.__main__", "worker.wiring", "worker.notifier.__main__"),  # building and running the process
    ("worker.runner",),  # admission, leases, outputs: drives the engines
    ("worker.engines", "worker.speech"),  # the work, one engine per job type
    ("worker.clients", "worker.comfy", "worker.notifier", "worker.probes",
     "worker.sweeper"),  # what it is done with: the node protocol clients, webhooks, probes, sweeping
    ("worker.gpu",),  # the GPU nodes and the pool that shares them
    ("worker.context", "worker.inputs", "worker.media"),  # a job's context, its inputs and their media
)


# chalicelib's rooms, top down (each package's docstring says the same): a module may import its own
# room and those below, never above. The base modules (errors, settings) are below every room.
CHALICELIB_LAYERS = (
    ("chalicelib.api",),  # the service facade and its parts, wiring, OpenAPI, docs, compat, the key CLI
    ("chalicelib.ops",),  # logs and metrics, shared with the worker
    ("chalicelib.files",),  # object storage, uploads, voices
    ("chalicelib.security", "chalicelib.queues"),  # keys and auth, URL policy, signing; the queue adapters
    ("chalicelib.store",),  # Redis: job store, outbox, pool records, key names, Lua scripts
    ("chalicelib.jobs",),  # the job model, types, catalog and schemas
    ("chalicelib", "chalicelib.errors", "chalicelib.settings"),  # the base
)


def layer_of(module: str, layers: tuple[tuple[str, ...], ...]) -> int | None:
    """The index of the most specific prefix that names ``module`` (``chalicelib`` itself only exactly)."""
    best: tuple[int, int] | None = None
    for level, prefixes in enumerate(layers):
        for p in prefixes:
            named = module == p or (module.startswith(p + ".") and p != "chalicelib")
            if named and (best is None or len(p) > best[1]):
                best = (level, len(p))
    return None if best is None else best[0]


def worker_layer(module: str) -> int | None:
    return layer_of(module, WORKER_LAYERS)


def chalicelib_layer(module: str) -> int | None:
    return layer_of(module, CHALICELIB_LAYERS)


def test_every_worker_module_has_a_layer() -> None:
    assert [m for m in module_files() if m.startswith("worker.") and worker_layer(m) is None] == []


def test_every_chalicelib_module_is_in_a_room() -> None:
    """No module lies loose beside the rooms: chalicelib's top level holds only the base modules."""
    modules = [m for m in module_files() if m.split(".")[0] == "chalicelib"]
    assert [m for m in modules if chalicelib_layer(m) is None] == []
    assert sorted(m for m in modules if m.count(".") == 1 and chalicelib_layer(m) == len(CHALICELIB_LAYERS) - 1) \
        == ["chalicelib.errors", "chalicelib.settings"]


def test_every_room_says_what_it_owns_and_may_import() -> None:
    rooms = [p for layer in CHALICELIB_LAYERS[:-1] for p in layer]
    undocumented = []
    for room in rooms:
        doc = ast.get_docstring(ast.parse((ROOT / room.replace(".", "/") / "__init__.py").read_text())) or ""
        if "May import" not in doc:
            undocumented.append(room)
    assert undocumented == []


def test_the_layer_check_catches_an_upward_import() -> None:
    """The rule itself: a store module importing the API, or jobs importing the store, is upward."""
    assert chalicelib_layer("chalicelib.store.jobs") > chalicelib_layer("chalicelib.api.service")  # type: ignore[operator]
    assert chalicelib_layer("chalicelib.jobs.models") > chalicelib_layer("chalicelib.store.keys")  # type: ignore[operator]
    assert chalicelib_layer("chalicelib.errors") == chalicelib_layer("chalicelib")
    assert chalicelib_layer("chalicelib.queues.redis_queue") == chalicelib_layer("chalicelib.security.auth")


def test_imports_point_down() -> None:
    """chalicelib never imports worker; devnode imports nothing of ours; a worker module never
    imports one of a layer above its own (the engines never import the runner, the pool never an engine),
    nor does a chalicelib module import a room above its own (the store never the API, jobs never Redis)."""
    edges = graph()
    ours = ("chalicelib", "worker", "app", "wsgi", "devtools", "bench", "tests")
    problems = []
    for module, targets in edges.items():
        for target in targets:
            top = target.split(".")[0]
            if module.startswith("chalicelib") and top in ("worker", "app", "wsgi", "devtools"):
                problems.append(f"{module} -> {target}")
            if module.startswith("devnode") and top in ours:
                problems.append(f"{module} -> {target}")
            for layer in (worker_layer, chalicelib_layer):
                mine, theirs = layer(module), layer(target)
                if mine is not None and theirs is not None and theirs < mine:
                    problems.append(f"{module} -> {target} (upward)")
    assert problems == []


def test_no_function_level_imports_of_project_modules_in_the_service() -> None:
    modules = module_files()
    nested = [f"{name}:{line} imports {target}"
              for name, path in modules.items() if name.split(".")[0] in ("chalicelib", "worker", "app", "wsgi")
              for target, line, top in imports_of(path, modules) if not top]
    assert nested == []


def test_only_the_settings_read_the_environment() -> None:
    allowed = {ROOT / "chalicelib" / "settings.py", ROOT / "gunicorn.conf.py",
               ROOT / "worker" / "__main__.py"}  # drops the API's PROMETHEUS_MULTIPROC_DIR before any import
    readers = []
    for package in ("chalicelib", "worker"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            if path not in allowed and ("os.environ" in text or "os.getenv" in text):
                readers.append(str(path.relative_to(ROOT)))
    assert readers == []


def test_env_sample_is_generated_from_the_settings() -> None:
    """Regenerate with: python -m chalicelib.settings > .env.sample"""
    assert (ROOT / ".env.sample").read_text() == env_sample()
