"""The privacy check: no raw user id or e-mail address in any published page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from helpers.report.pages import _visible_text
from helpers.report.settings import NotebookFailed

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


class PrivacyError(NotebookFailed):
    """A rendered report would show raw user ids or e-mail addresses (exit code 1)."""


def _load_ids(path: Path | None) -> set[str]:
    if path is None or not path.exists():
        return set()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pc.unique(pq.read_table(path, columns=["user_id"]).column("user_id").combine_chunks())
    # Short or numeric-only ids would match ordinary numbers in a report; they are not checked.
    return {i for i in ids.to_pylist() if i and (len(i) >= 9 or (len(i) >= 4 and re.search(r"[A-Za-z]", i)))}


def privacy_problems(html_paths: Iterable[Path], ids: set[str]) -> list[str]:
    """Raw user ids or e-mail addresses found in rendered reports, as messages that do not repeat them."""
    problems = []
    for path in html_paths:
        text = _visible_text(path.read_text(encoding="utf-8"))
        emails = set(EMAIL.findall(text))
        tokens = set(re.split(r"[\s<>\"'=,;:(){}\[\]|/\\]+", text)) if ids else set()
        leaked = tokens & ids
        if emails:
            problems.append(f"{path.name}: {len(emails)} e-mail address(es)")
        if leaked:
            problems.append(f"{path.name}: {len(leaked)} raw user id(s); show counts or report.pseudonymize(ids)")
    return problems
