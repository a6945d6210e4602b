"""``c3render jobs``: the table of jobs, fitted to the terminal's width.

The id, type and status are never cut: they are what a reader acts on. The error comes last and is
cut to what is left of the line (``…``); when too little is left, the columns that matter least
(GPU seconds, progress, age) go first.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.cells import cell_len, set_cell_size

from c3render_client.progress import describe

SHORT_ID_CHARS = 8
GAP = "  "
MIN_ERROR_CHARS = 12  # narrower than this, an error says too little: other columns make room first


@dataclass(frozen=True)
class Column:
    name: str
    right: bool = False  # numbers
    drop_rank: int = 0  # dropped when the line is too wide, rank 1 first; 0: always shown
    flexible: bool = False  # takes what is left of the line, cut with …


COLUMNS = (Column("id"), Column("type"), Column("status"), Column("done", right=True, drop_rank=2),
           Column("age", right=True, drop_rank=3), Column("GPU s", right=True, drop_rank=1),
           Column("error", flexible=True))


def short_id(job_id: str) -> str:
    """The first 8 characters of a job id: what ``c3render jobs`` shows, and every verb takes."""
    return job_id[:SHORT_ID_CHARS]


def job_row(job: dict[str, Any], *, full_id: bool, now_s: float) -> list[str]:
    """A job's cells, in the order of :data:`COLUMNS`."""
    return [str(job.get("id")) if full_id else short_id(str(job.get("id"))), str(job.get("type")), describe(job),
            f"{float(job.get('progress') or 0):.0%}", age(job.get("created_at"), now_s),
            f"{float(job.get('gpu_seconds') or 0):.1f}", " ".join(str(job.get("error") or "").split())]


def age(created_at: Any, now_s: float) -> str:
    """How long ago an RFC 3339 time was, in its largest unit: ``42s``, ``12m``, ``5h``, ``3d``."""
    try:
        seconds = now_s - datetime.fromisoformat(str(created_at).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "d" else 1):
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def render(rows: Sequence[Sequence[str]], width: int | None, columns: Sequence[Column] = COLUMNS) -> list[str]:
    """The table's lines (a header, then a line per row), none wider than ``width`` when the
    never-dropped columns fit in it (``None``: as wide as the cells are)."""
    natural = [max([cell_len(c.name), *(cell_len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    shown = [i for i, c in enumerate(columns) if not c.flexible or any(row[i] for row in rows)]
    widths = dict(enumerate(natural))
    if width is not None:
        for i in sorted((i for i in shown if columns[i].drop_rank), key=lambda i: columns[i].drop_rank):
            if _room(shown, columns, natural, width) >= _wanted(shown, columns, natural):
                break
            shown.remove(i)
        room = _room(shown, columns, natural, width)
        for i in [i for i in shown if columns[i].flexible]:
            if room < cell_len(columns[i].name):
                shown.remove(i)
            else:
                widths[i] = min(natural[i], room)
    lines = [_line([c.name for c in columns], shown, columns, widths)]
    lines += [_line(row, shown, columns, widths) for row in rows]
    return lines


def _room(shown: Iterable[int], columns: Sequence[Column], natural: Sequence[int], width: int) -> int:
    """What is left for the flexible column once the others and the gaps are laid out."""
    kept = list(shown)
    return width - sum(natural[i] for i in kept if not columns[i].flexible) - len(GAP) * (len(kept) - 1)


def _wanted(shown: Iterable[int], columns: Sequence[Column], natural: Sequence[int]) -> int:
    return max([0, *(min(natural[i], MIN_ERROR_CHARS) for i in shown if columns[i].flexible)])


def _line(cells: Sequence[str], shown: Sequence[int], columns: Sequence[Column], widths: dict[int, int]) -> str:
    out = []
    for i in shown:
        text, size = cells[i], widths[i]
        if columns[i].flexible and cell_len(text) > size:
            text = set_cell_size(text, size - 1) + "…"
        pad = " " * (size - cell_len(text))
        out.append(pad + text if columns[i].right else text + pad)
    return GAP.join(out).rstrip()
