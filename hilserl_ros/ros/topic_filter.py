"""Which topics a node relays, records or plays: regular expressions on the whole topic name.

One rule for the Foxglove bridge, the recorder and the player (full match, as the official
foxglove_bridge's topic whitelist): ``/joint_states`` matches ``/joint.*`` but not ``joint``.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence


class TopicFilter:
    """Topics matching any of ``include`` and none of ``exclude``."""

    def __init__(self, include: Iterable[str], exclude: Iterable[str] = ()):
        self.include = [_compile(p) for p in include]
        self.exclude = [_compile(p) for p in exclude]

    def accepts(self, topic: str) -> bool:
        return any(p.fullmatch(topic) for p in self.include) and not any(p.fullmatch(topic) for p in self.exclude)


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None


def regex_problem(patterns: Sequence[str]) -> str | None:
    """Parameter validator: why ``patterns`` cannot be used as topic filters, or None."""
    try:
        TopicFilter(patterns)
    except ValueError as exc:
        return str(exc)
    return None
