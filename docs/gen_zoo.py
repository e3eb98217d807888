"""Render the model zoo page (``zoo.md`` of the site) from the registry's metadata.

The page is never committed: ``docs/hooks.py`` calls :func:`render_zoo` on every ``mkdocs build``, so
whatever ``patchvae.models.list_pretrained()`` returns is on the page, with its cfg's fields. Run
``python docs/gen_zoo.py`` to print the markdown.
"""

from __future__ import annotations

from typing import Any

#: metric keys in the order the table shows them; other keys follow, sorted
METRIC_ORDER = ("conv1_top1", "conv3_top1", "conv5_top1", "conv5_top5", "linear_probe_top1", "knn_top1")


def _cell(text: Any) -> str:
    """One markdown table cell: no newlines, no unescaped pipes."""
    if text is None or text == "":
        return "—"
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"``{text}``"


def _metrics(metrics: dict[str, float]) -> str:
    if not metrics:
        return "—"
    keys = [k for k in METRIC_ORDER if k in metrics] + sorted(k for k in metrics if k not in METRIC_ORDER)
    return "<br>".join(f"{_cell(k)}: {_number(metrics[k])}" for k in keys)


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else _cell(value)


def _source(cfg: Any) -> str:
    if cfg.hf_hub_id:
        rev = f"@{cfg.hf_revision[:12]}" if cfg.hf_revision else ""
        return f"Hub {_code(cfg.hf_hub_id + rev)}"
    return f"package {_code('weights/' + cfg.file)}" if cfg.file else "—"


def zoo_entries() -> list[tuple[str, Any, bool]]:
    """``(name, cfg, is_default)`` for every registered weight, in ``list_pretrained()`` order."""
    from patchvae.models import get_pretrained_cfg, list_pretrained

    out = []
    for name in list_pretrained():
        cfg = get_pretrained_cfg(name)
        out.append((name, cfg, get_pretrained_cfg(cfg.architecture).tag == cfg.tag))
    return out


def render_zoo() -> str:
    """The zoo page in markdown: one table row per registered weight, then each weight's details."""
    from patchvae.models import list_models, list_pretrained

    entries = zoo_entries()
    lines = [
        "# Model zoo",
        "",
        "Every pretrained weight registered in `patchvae.models` (`list_pretrained()`), generated from the",
        "registry's metadata (`get_pretrained_cfg(name)`) when the site is built, so this page cannot drift",
        "from the code. Load one with `patchvae.models.create(name, pretrained=True)`; a bare architecture",
        "name means its **default** weights. Metrics are top-1/top-5 accuracy in % (see each weight's protocol",
        "below and [Results](results.md)).",
        "",
        f"{len(entries)} weights for {len({cfg.architecture for _, cfg, _ in entries})} architectures.",
        "",
        "| name | parameters | dataset | metrics | sha256 | description |",
        "|---|---:|---|---|---|---|",
    ]
    for name, cfg, default in entries:
        params = f"{cfg.num_params:,}" if cfg.num_params else "—"
        shown = _code(name) + (f"<br>(default of {_code(cfg.architecture)})" if default else "")
        sha = _code(cfg.sha256) if cfg.sha256 else "—"
        lines.append(
            f"| {shown} | {params} | {_cell(cfg.dataset)} | {_metrics(dict(cfg.metrics))} | {sha} | {_cell(cfg.description)} |"
        )

    lines += ["", "## Architectures", "", "| architecture | weights |", "|---|---|"]
    for arch in list_models():
        tags = list_pretrained(f"{arch}.*")
        lines.append(f"| {_code(arch)} | {', '.join(_code(t) for t in tags) if tags else 'none yet (train with a recipe)'} |")

    lines += ["", "## Details", ""]
    for name, cfg, _ in entries:
        lines += [f"### `{name}`", ""]
        if cfg.description:
            lines += [" ".join(cfg.description.split()), ""]
        rows = [
            ("architecture", _code(cfg.architecture)),
            ("weights", _source(cfg)),
            ("sha256", _code(cfg.sha256) if cfg.sha256 else "—"),
            ("parameters", f"{cfg.num_params:,}" if cfg.num_params else "—"),
            ("dataset", _cell(cfg.dataset)),
            ("recipe", _code(cfg.recipe) if cfg.recipe else "—"),
            ("epochs", _cell(cfg.epochs)),
            ("model arguments", _code(repr(dict(cfg.model_args))) if cfg.model_args else "—"),
            ("input", _cell(_data_config(cfg.data_config))),
            ("license", _cell(cfg.license)),
        ]
        lines += ["| field | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows] + [""]
        if cfg.metrics:
            lines += ["| metric | value |", "|---|---:|"]
            lines += [f"| {_cell(k)} | {_number(v)} |" for k, v in cfg.metrics.items()] + [""]
        if cfg.protocol:
            lines += [f"Protocol: {' '.join(cfg.protocol.split())}", ""]
        for label, command in (("Trained with", cfg.command), ("Evaluated with", cfg.eval_command)):
            if command:
                lines += [f"{label}:", "", "```bash", command.strip(), "```", ""]
        for note in cfg.notes:
            lines += [f"* {' '.join(str(note).split())}"]
        if cfg.notes:
            lines += [""]
    return "\n".join(lines).rstrip() + "\n"


def _data_config(dc: Any) -> str | None:
    if dc is None:
        return None
    parts = [
        "×".join(map(str, getattr(dc, "input_size", ()))),
        f"mean {tuple(getattr(dc, 'mean', ()))}",
        f"std {tuple(getattr(dc, 'std', ()))}",
    ]
    if getattr(dc, "resize_mode", None):
        parts.append(f"resize mode {dc.resize_mode}")
    return ", ".join(parts)


if __name__ == "__main__":
    print(render_zoo(), end="")
