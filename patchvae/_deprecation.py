"""Deprecations: a public name or argument keeps working, with a ``FutureWarning``, for one minor version.

Policy (semantic versioning, CHANGELOG.md): a public name listed in ``docs/api.md`` is removed or
changes its signature only after it was deprecated in a release; it then warns for one minor
version (deprecated in 0.2.0 -> removed in 0.3.0). ``FutureWarning`` is used because it is shown to
end users by default (``DeprecationWarning`` is hidden outside ``__main__``).

    @deprecated("0.2.0", "0.3.0", "sample")
    def sample_prior(self, ...): ...

Every deprecated callable is recorded in :data:`DEPRECATED` (qualified name -> notice), which the
API-stability test reads: a deprecated name may disappear in its ``removed_in`` version.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["DEPRECATED", "DeprecationNotice", "deprecated", "warn_deprecated"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class DeprecationNotice:
    """What replaces a deprecated name, since when, and when it goes."""

    name: str
    since: str
    removed_in: str
    replacement: str

    def message(self) -> str:
        return (
            f"{self.name} is deprecated since patchvae {self.since} and will be removed in {self.removed_in}; "
            f"use {self.replacement} instead"
        )


#: qualified name -> notice, for every deprecated callable
DEPRECATED: dict[str, DeprecationNotice] = {}


def warn_deprecated(notice: DeprecationNotice, stacklevel: int = 3) -> None:
    """Emit the ``FutureWarning`` of ``notice`` at the caller's caller."""
    warnings.warn(notice.message(), FutureWarning, stacklevel=stacklevel)


def deprecated(since: str, removed_in: str, replacement: str) -> Callable[[F], F]:
    """Mark a function or method as deprecated: it still works, and warns once per call site.

    Args:
        since: the version that deprecates it (e.g. ``"0.2.0"``).
        removed_in: the version that removes it: the next minor one.
        replacement: what to use instead (shown in the warning).
    """

    def wrap(fn: F) -> F:
        notice = DeprecationNotice(fn.__qualname__, since, removed_in, replacement)
        DEPRECATED[f"{fn.__module__}.{fn.__qualname__}"] = notice

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            warn_deprecated(notice)
            return fn(*args, **kwargs)

        wrapper.__deprecated__ = notice  # type: ignore[attr-defined]
        doc = fn.__doc__ or ""
        wrapper.__doc__ = f"{doc}\n\n.. deprecated:: {since}\n    {notice.message()}.".strip()
        return wrapper  # type: ignore[return-value]

    return wrap
