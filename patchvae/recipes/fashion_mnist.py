"""Fashion-MNIST analogues of every Table 1 row: runnable on a laptop CPU, used for the zoo's weights.

Same models and hyper-parameters as the paper's CIFAR-100 recipes (32×32 input: 28×28 padded,
1 channel), trained for 20 epochs instead of 90.
"""

from __future__ import annotations

from ._registry import register_recipe
from .paper import TABLE1_ROWS, table1_recipe

FASHION_MNIST_EPOCHS = 20


def _register() -> None:
    for row, (label, *_rest) in TABLE1_ROWS.items():
        base = table1_recipe("cifar100", row)
        register_recipe(
            base.replace(
                name=f"fmnist_{row}",
                description=f"{label} on Fashion-MNIST (28×28 padded to 32×32, 1 channel), {FASHION_MNIST_EPOCHS} epochs",
                dataset="fashion_mnist",
                split="train",
                epochs=FASHION_MNIST_EPOCHS,
                model_args={**base.model_args, "in_chans": 1},
                paper_ref=f"Fashion-MNIST analogue of Table 1, {label}",
                finetune_protocol="fashion_mnist",
            )
        )


_register()
