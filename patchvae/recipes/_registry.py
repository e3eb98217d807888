"""Named recipes and sweeps (groups of recipes, e.g. one ablation table)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable

from ._recipe import Recipe

__all__ = ["get_recipe", "get_sweep", "list_recipes", "list_sweeps", "register_recipe", "register_sweep"]

_recipes: dict[str, Recipe] = {}
_sweeps: dict[str, tuple[str, ...]] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    if recipe.name in _recipes:
        raise ValueError(f"recipe {recipe.name!r} is already registered")
    _recipes[recipe.name] = recipe
    return recipe


def register_sweep(name: str, recipes: Iterable[Recipe]) -> tuple[str, ...]:
    if name in _sweeps:
        raise ValueError(f"sweep {name!r} is already registered")
    members = tuple(register_recipe(r).name if r.name not in _recipes else r.name for r in recipes)
    _sweeps[name] = members
    return members


def _unknown(kind: str, name: str, known: Iterable[str]) -> ValueError:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} 'patchvae recipes' lists them all.")


def get_recipe(name: str) -> Recipe:
    if name not in _recipes:
        raise _unknown("recipe", name, _recipes)
    return _recipes[name]


def list_recipes(pattern: str = "*") -> list[str]:
    return sorted(n for n in _recipes if fnmatch.fnmatchcase(n, pattern))


def get_sweep(name: str) -> list[Recipe]:
    if name not in _sweeps:
        raise _unknown("sweep", name, _sweeps)
    return [_recipes[n] for n in _sweeps[name]]


def list_sweeps(pattern: str = "*") -> list[str]:
    return sorted(n for n in _sweeps if fnmatch.fnmatchcase(n, pattern))
