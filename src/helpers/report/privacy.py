"""The privacy check: no raw user id or e-mail address in any published page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from helpers.report.pages import _visible_text
from helpers.report.settings import ConfigError, NotebookFailed

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


class PrivacyError(NotebookFailed):
    """A rendered report would show raw user ids or e-mail addresses (exit code 1)."""


def check_id_source(path: Path | None, *, after_run: bool = False) -> None:
    """A configured id source must be a Parquet file with ``user_id``: before the run when it exists already,
    and after it in any case (the run may create it). A typo must not switch the privacy check off."""
    if path is None:
        return
    if not path.exists():
        if after_run:
            raise ConfigError(f"privacy.ids_from {str(path)!r} does not exist after the run, so the pages cannot be "
                               "checked for raw user ids; correct the path (or set it to null to check e-mails only).")
        return
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same configuration error
        raise ConfigError(f"privacy.ids_from {str(path)!r} is not a readable Parquet file ({type(exc).__name__}).") from None
    if "user_id" not in names:
        raise ConfigError(f"privacy.ids_from {str(path)!r} has no 'user_id' column (columns: {', '.join(names)}).")


def _load_ids(path: Path | None) -> set[str]:
    check_id_source(path, after_run=True)
    if path is None:
        return set()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pc.unique(pq.read_table(path, columns=["user_id"]).column("user_id").combine_chunks())
    # Short or numeric-only ids would match ordinary numbers in a report; they are not checked.
    return {i for i in ids.to_pylist() if i and (len(i) >= 9 or (len(i) >= 4 and re.search(r"[A-Za-z]", i)))}


def _tokens(text: str) -> set[str]:
    """Every word of ``text`` and every run of its parts joined by ``_`` or ``-``: an id glued into a longer name
    (``email_open_u000001``, ``u000001-s3``) is found, and so is an id that itself holds ``_`` or ``-``."""
    words = set(re.split(r"[\s<>\"'=,;:(){}\[\]|/\\]+", text))
    out = set(words)
    for word in words:
        if "_" not in word and "-" not in word:
            continue
        parts = re.split(r"([_-])", word)  # words and their separators, alternating
        pieces = parts[::2]
        if len(pieces) > 12:  # a long slug: its single parts, and pairs, are enough to find an id in it
            out.update(pieces)
            out.update(a + sep + b for a, sep, b in zip(pieces, parts[1::2], pieces[1:]))
            continue
        for i in range(len(pieces)):
            for j in range(i + 1, len(pieces) + 1):
                out.add("".join(parts[2 * i:2 * j - 1]))
    return out


def privacy_problems(html_paths: Iterable[Path], ids: set[str]) -> list[str]:
    """Raw user ids or e-mail addresses found in rendered reports, as messages that do not repeat them."""
    problems = []
    for path in html_paths:
        text = _visible_text(path.read_text(encoding="utf-8"))
        emails = set(EMAIL.findall(text))
        leaked = _tokens(text) & ids if ids else set()
        if emails:
            problems.append(f"{path.name}: {len(emails)} e-mail address(es)")
        if leaked:
            problems.append(f"{path.name}: {len(leaked)} raw user id(s); show counts or report.pseudonymize(ids)")
    return problems
