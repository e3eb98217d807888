"""Training recipes: every run of the paper (Tables 1-6), runnable Fashion-MNIST analogues, and Zhang et al.
2022's Tables 2-3 (``zhang2022_*``) and Sixt 2018's Tables 2-4 (``sixt2018_*``).

    from patchvae.recipes import list_recipes, get_recipe
    recipe = get_recipe("cifar100_patchvae_lw").with_overrides(["epochs=10"])
"""

from . import fashion_mnist, folder, paper, sixt2018, zhang2022  # noqa: F401  (register the recipes)
from ._recipe import Recipe, parse_overrides
from ._registry import get_recipe, get_sweep, list_recipes, list_sweeps, register_recipe, register_sweep

__all__ = [
    "Recipe",
    "get_recipe",
    "get_sweep",
    "list_recipes",
    "list_sweeps",
    "parse_overrides",
    "register_recipe",
    "register_sweep",
]
