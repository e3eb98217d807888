"""Publishing weights: the exact folder (``model.safetensors`` + ``config.json`` + ``README.md`` model card)
and its upload to the Hugging Face Hub.

``patchvae publish NAME --repo-id ORG/REPO [--dry-run DIR]`` calls :func:`publish`. The folder is what
``create(name, pretrained=True, checkpoint_path=DIR)`` and ``from_pretrained(DIR)`` load, and what the
registry's ``hf_hub_id``/``hf_revision``/``sha256`` point to once uploaded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_write, save_json
from ._builder import create, folder_config_dict, read_folder_config
from ._hub import CONFIG_FILENAME, MODEL_CARD_FILENAME, WEIGHTS_FILENAME, resolve_weights_file
from ._papers import PAPERS, get_paper
from ._registry import get_architecture_cfg, get_pretrained_cfg, is_model, list_pretrained, split_model_name_tag
from ._weights import STORAGE_TOLERANCE, cast_for_storage, sha256sum, storage_error, verify_sha256

__all__ = [
    "ARXIV_ID",
    "PAPER_BIBTEX",
    "PublishResult",
    "build_publish_folder",
    "model_card",
    "publish",
    "registry_snippet",
]

log = logging.getLogger(__name__)

ARXIV_ID = PAPERS["gupta2020"].reference.removeprefix("arXiv:")
PAPER_TITLE = "PatchVAE: Learning Local Latent Codes for Recognition"
PAPER_BIBTEX = PAPERS["gupta2020"].bibtex  #: the PatchVAE paper's (each family's is in patchvae.models._papers)

#: provenance every published weight must state (the model card is built from it)
PROVENANCE_KEYS = ("dataset", "recipe", "command", "epochs", "metrics", "protocol", "eval_command", "license")
_REQUIRED = ("dataset", "recipe", "command", "epochs", "metrics", "protocol")
_CLI_FLAG = {
    "dataset": "--dataset",
    "recipe": "--recipe",
    "command": "--command",
    "epochs": "--epochs",
    "metrics": "--metric NAME=VALUE",
    "protocol": "--protocol",
}
#: Hugging Face dataset ids of the datasets of the paper (the card's ``datasets:`` metadata)
HF_DATASETS = {
    "cifar100": "uoft-cs/cifar100",
    "cifar-100": "uoft-cs/cifar100",
    "fashion-mnist": "zalando-datasets/fashion_mnist",
    "fashion_mnist": "zalando-datasets/fashion_mnist",
    "fashionmnist": "zalando-datasets/fashion_mnist",
    "imagenet": "ILSVRC/imagenet-1k",
    "imagenet-1k": "ILSVRC/imagenet-1k",
}
TAGS = ("patchvae", "vae", "representation-learning", "unsupervised", "image-feature-extraction", "pytorch", "safetensors")


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` did: the folder it built and, unless dry run, the Hub commit."""

    name: str
    folder: Path
    sha256: str
    repo_id: str
    commit: str | None = None  #: the revision to pin in the registry (``hf_revision``)
    # after an upload ``folder`` was a temporary folder and is gone; with a dry run it is the folder written
    url: str | None = None


#: a Hugging Face repo id: ORG/NAME of letters, digits, '-', '_', '.' (no '--' or '..'), at most 96 characters each
_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
#: a weights tag: what follows the dot in ARCH.TAG
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: an SPDX licence id ("mit", "apache-2.0", "cc-by-4.0", "LicenseRef-...") or a Hub licence name ("other")
_LICENSE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,63}")


def check_repo_id(repo_id: Any) -> str:
    """``repo_id`` if it is a valid Hugging Face ``ORG/REPO`` id, else ValueError saying what is allowed."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) and "--" not in p and ".." not in p for p in parts) \
            or repo_id.endswith(".git"):
        raise ValueError(
            f"repo_id must be 'ORG/REPO' (letters, digits, '-', '_' and '.', no '--' or '..', at most 96 characters "
            f"each, e.g. patchvae/patchvae_resnet9.cifar100), got {repo_id!r:.120}"
        )
    return repo_id


def check_tag(tag: Any) -> str:
    """``tag`` if it is a valid weights tag (letters, digits, '_' and '-'), else ValueError."""
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise ValueError(f"a weights tag has letters, digits, '_' and '-' only (e.g. cifar100, fmnist_lw), got {tag!r:.120}")
    return tag


def check_license(license: Any) -> str:
    """``license`` if it is an SPDX-style licence id (e.g. mit, apache-2.0, cc-by-4.0), else ValueError."""
    if not isinstance(license, str) or not _LICENSE.fullmatch(license):
        raise ValueError(
            f"license must be an SPDX licence id such as mit, apache-2.0 or cc-by-4.0 (letters, digits, '.', '+', '-'), "
            f"got {license!r:.120}"
        )
    return license


# --------------------------------------------------------------------------- model card
def _yaml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def _py_str(value: str) -> str:
    return json.dumps(value)  # an ASCII JSON string is a valid Python string literal


def _one_line(value: Any) -> str:
    """``value`` as one line of Markdown text (no line breaks, no HTML)."""
    return " ".join(str(value).split()).replace("<", "&lt;").replace(">", "&gt;")


def _cell(value: Any) -> str:
    return _one_line(value).replace("|", "\\|")


def _backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


def _code_span(text: str) -> str:
    text = " ".join(text.split())
    ticks = "`" * (_backtick_run(text) + 1)
    return f"{ticks} {text} {ticks}" if len(ticks) > 1 else f"`{text}`"


def _fence(text: str, lang: str) -> list[str]:
    """A fenced code block that ``text`` (which may hold backticks) cannot close early."""
    ticks = "`" * max(3, _backtick_run(text) + 1)
    return [f"{ticks}{lang}", text, ticks]


def _dataset_id(dataset: str) -> str:
    return HF_DATASETS.get(dataset.strip().lower(), dataset.strip())


def model_card(config: Mapping[str, Any], repo_id: str | None = None) -> str:
    """README.md of a published weights folder, from its ``config.json`` (see :func:`build_publish_folder`)."""
    name = f"{config['architecture']}.{config['tag']}" if config.get("tag") else config["architecture"]
    if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_-]+)?", name):
        raise ValueError(f"not a weights name ARCH.TAG: {name!r:.120}")
    if repo_id is not None:
        check_repo_id(repo_id)
    license = check_license(config.get("license") or "mit")
    paper = get_paper(config.get("paper"))
    data = config["data_config"]
    metrics: Mapping[str, float] = config.get("metrics") or {}
    front = [
        "---",
        f"license: {license}",
        "library_name: patchvae",
        "pipeline_tag: image-feature-extraction",
        "tags:",
        *[f"- {t}" for t in TAGS],
        "datasets:",
        f"- {_yaml_str(_dataset_id(str(config['dataset'])))}",
        "---",
    ]
    usage = ["import patchvae", ""]
    if repo_id:
        usage = [
            "import patchvae",
            "from huggingface_hub import snapshot_download",
            "",
            f"model = patchvae.models.from_pretrained(snapshot_download({_py_str(repo_id)}))  # this repository",
            "# or, with a patchvae release whose registry lists these weights:",
        ]
    lines = [
        *front,
        "",
        f"# {name}",
        "",
        _one_line(config.get("description") or f"{config['architecture']} weights").rstrip(".") + ".",
        "",
        f"{paper.summary} These weights load with the `patchvae` library.",
        "",
        "## Usage",
        "",
        "```python",
        *usage,
        f"model = patchvae.models.create({_py_str(name)}, pretrained=True)",
        *([f"phi = patchvae.models.create_backbone({_py_str(name)}, pretrained=True)  # φ for fine-tuning"]
          if paper.has_backbone else []),
        f'features = patchvae.extract_features(model, "path/to/images/", '
        f'layer={_py_str(str(config.get("feature_layer") or paper.feature_layer))})',
        "```",
        "",
        "## Model",
        "",
        f"- Architecture: `{config['architecture']}`, arguments "
        f"{_code_span(json.dumps(config.get('model_args') or {}, sort_keys=True, ensure_ascii=False))}",
        f"- Parameters: {int(config['num_params']):,}",
        f"- Input: {int(data['input_size'][0])}×{int(data['input_size'][1])}×{int(data['input_size'][2])} (C×H×W), "
        f"{_code_span(str(data.get('resize_mode', 'resize_crop')))} to size, pixels in [0, 1] normalised with mean "
        f"{[float(v) for v in data['mean']]} and std {[float(v) for v in data['std']]} (applied by "
        "`patchvae.extract_features` and `patchvae.data.create_transform(model)`)",
        f"- Weights: `{WEIGHTS_FILENAME}`, sha256 {_code_span(str(config['sha256']))}"
        + (f"; stored in {_one_line(config['storage_dtype'])}, loaded into the model's dtype"
           + (f" (every representation layer within {float(config['storage_rel_change']):.2g} relative of the float32 "
              "weights on a seeded input batch)" if config.get("storage_rel_change") is not None else "")
           if config.get("storage_dtype") else ""),
        "",
        "## Training",
        "",
        f"- Data: {_one_line(config['dataset'])}",
        f"- Recipe: {_one_line(config['recipe'])}",
        f"- Epochs: {_one_line(config['epochs'])}",
        "- Command:",
        "",
        *_fence(str(config["command"]), "bash"),
        "",
        "## Evaluation",
        "",
        f"Protocol: {_one_line(config['protocol'])}",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {_cell(k)} | {v:g} |" if isinstance(v, (int, float)) else f"| {_cell(k)} | {_cell(v)} |"
          for k, v in metrics.items()],
        "",
        *(["Reproduce the evaluation:", "", *_fence(str(config["eval_command"]), "bash"), ""]
          if config.get("eval_command") else []),
        "## License",
        "",
        license,
        "",
        "## Citation",
        "",
        "```bibtex",
        paper.bibtex,
        "```",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the folder
def _provenance_of_cfg(cfg: Any) -> dict[str, Any]:
    out = {k: getattr(cfg, k) for k in PROVENANCE_KEYS}
    out["metrics"] = dict(cfg.metrics or {})
    out["description"] = cfg.description
    return {k: v for k, v in out.items() if v not in (None, {}, "")}


def _check_provenance(provenance: Mapping[str, Any], name: str) -> None:
    missing = [k for k in _REQUIRED if provenance.get(k) in (None, "", {}, [])]
    if missing:
        flags = ", ".join(_CLI_FLAG[k] for k in missing)
        raise ValueError(
            f"cannot publish {name!r}: its model card needs {', '.join(missing)}. Set them in the registry entry "
            f"(PretrainedCfg) or the folder's config.json, or pass {flags} to `patchvae publish`."
        )
    check_license(provenance.get("license") or "mit")
    epochs = provenance["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    bad = {k: v for k, v in provenance["metrics"].items() if isinstance(v, bool) or not isinstance(v, (int, float))}
    if bad:
        raise ValueError(f"metrics must be numbers, got {bad}")


def _resolve_name(source: str | os.PathLike, name: str | None) -> tuple[str, str, Path | None, dict | None]:
    """(arch, tag, local path or None, folder config or None) of what is being published."""
    path = Path(source).expanduser()
    local = path.exists()
    looks_local = os.sep in str(source) or "/" in str(source) or path.suffix in (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
    if not local and looks_local:
        raise FileNotFoundError(f"{source} does not exist (NAME is a registered ARCH.TAG or a local weights folder/file)")
    folder = read_folder_config(path) if local else None
    target = name or (None if local else str(source))
    if target is None and folder is not None and folder.get("tag"):
        target = f"{folder['architecture']}.{folder['tag']}"
    if target is None:
        raise ValueError(f"{source} is a local file/folder without a tagged config.json: name it with --name ARCH.TAG")
    arch, tag = split_model_name_tag(target)
    if not is_model(arch):
        from ._registry import model_entrypoint

        model_entrypoint(arch)  # raises with the closest matches
    if not local and not tag:
        tag = get_pretrained_cfg(arch, allow_no_weights=False).tag
    if not tag:
        raise ValueError(f"published weights need a tag: name them {arch}.<tag> (e.g. {arch}.cifar100) with --name")
    check_tag(tag)
    if folder is not None and folder["architecture"] != arch:
        raise ValueError(f"{source} holds {folder['architecture']!r} weights, not {arch!r}")
    return arch, tag, (path if local else None), folder


def build_publish_folder(
    source: str | os.PathLike,
    directory: str | os.PathLike,
    *,
    name: str | None = None,
    repo_id: str | None = None,
    storage_dtype: str | None = None,
    **provenance: Any,
) -> tuple[str, Path]:
    """Write the exact folder to publish into ``directory``: ``model.safetensors``, ``config.json``, ``README.md``.

    ``source`` is a registered ``arch.tag`` with weights (its verified file is copied byte for byte), a
    local weights folder (``save_pretrained`` output), or a checkpoint (``.safetensors``/``.pt``,
    including the authors' ``run.py`` format) together with ``name="arch.tag"``. The weights are
    loaded strictly before anything is written. ``provenance`` (dataset, recipe, command, epochs,
    metrics, protocol, license, description) overrides what the registry/config.json says; dataset,
    recipe, command, epochs, metrics and protocol are required. ``storage_dtype`` ("float16", "bfloat16",
    "float32") re-serialises the weights in that dtype (they load into the model's own dtype): refused when a value
    overflows it, or when any representation layer moves by more than :data:`STORAGE_TOLERANCE` (relative) on a
    seeded input batch; ``config.json`` records the dtype and that change. Returns ``(arch.tag, directory)``.
    """
    arch, tag, local, folder = _resolve_name(source, name)
    full = f"{arch}.{tag}"
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty; publish into a new or empty folder")
    registered = full in list_pretrained()
    if local is None:
        cfg = get_pretrained_cfg(full)
        weights, sha = resolve_weights_file(cfg)
        if sha:
            verify_sha256(weights, sha)
        model = create(full, pretrained=True)
        base = _provenance_of_cfg(cfg)
    else:
        model = create(full if registered else arch, checkpoint_path=local)
        weights = local / WEIGHTS_FILENAME if local.is_dir() else local
        # a bare checkpoint under a registered name has that entry's provenance only if it is those weights
        # (the sha256 is compared below); create(..., checkpoint_path=) itself never carries it over
        base = _provenance_of_cfg(get_pretrained_cfg(full) if registered else model.pretrained_cfg) if folder is None else {
            k: folder[k] for k in (*PROVENANCE_KEYS, "description") if folder.get(k) not in (None, "", {})
        }
    merged = {**base, **{k: v for k, v in provenance.items() if v is not None}}
    merged.setdefault("description", get_architecture_cfg(arch).description)
    _check_provenance(merged, full)
    model.pretrained_cfg = model.pretrained_cfg.replace(architecture=arch, tag=tag)

    storage = {}
    if storage_dtype is not None:
        stored = cast_for_storage(model.state_dict(), storage_dtype)
        change = storage_error(model, stored)
        if change > STORAGE_TOLERANCE:
            raise ValueError(
                f"storing {full} in {storage_dtype} changes its outputs by {change:.2g} (relative), more than "
                f"{STORAGE_TOLERANCE:g}: publish it in float32 (no --storage-dtype)"
            )
        storage = {"storage_dtype": storage_dtype, "storage_rel_change": float(f"{change:.3g}")}
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / WEIGHTS_FILENAME
    exact = local is None or (weights.suffix == ".safetensors" and read_folder_config(weights) is not None)
    if exact and not storage:
        atomic_write(target, lambda p: shutil.copyfile(weights, p))  # the exact published bytes
    else:  # a bare/legacy checkpoint, or another storage dtype: re-serialise the validated (converted) state dict
        from .._io import save_safetensors

        save_safetensors(target, stored if storage else model.state_dict(), {"format": "pt"})
    sha = sha256sum(target)
    known = get_pretrained_cfg(full).sha256 if registered else None
    if known and known != sha:
        target.unlink()  # leave no half-built folder behind
        if created:
            directory.rmdir()
        raise ValueError(
            f"{full!r} is registered with sha256 {known}, but the weights to publish have {sha}: publish them "
            "under a new tag (--name ARCH.NEWTAG), or update the registry entry's sha256 first"
        )
    paper = get_paper(get_architecture_cfg(arch).paper)
    layers = model.representations() if hasattr(model, "representations") else {}
    layer = paper.feature_layer if paper.feature_layer in layers or "latent" not in layers else "latent"
    config = folder_config_dict(model, sha, {**merged, "paper": paper.reference, "citation": paper.bibtex,
                                             "feature_layer": layer, **storage})
    save_json(directory / CONFIG_FILENAME, config)
    atomic_write(directory / MODEL_CARD_FILENAME, lambda p: p.write_text(model_card(config, repo_id), encoding="utf-8"))
    log.info("wrote %s (sha256 %s) to %s", full, sha, directory)
    return full, directory


def registry_snippet(result: PublishResult) -> str:
    """The registry entry that points to published weights (paste into the model file's ``default_cfgs``)."""
    revision = result.commit or "<commit sha of the upload>"
    name, repo_id, revision, sha = (_py_str(str(v)) for v in (result.name, result.repo_id, revision, result.sha256))
    return (
        f"{name}: _cfg(\n    hf_hub_id={repo_id},\n    hf_revision={revision},\n"
        f"    sha256={sha},\n    ...  # model_args, data_config and provenance as in config.json\n),"
    )


def publish(
    source: str | os.PathLike,
    repo_id: str,
    *,
    name: str | None = None,
    dry_run: str | os.PathLike | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    api: Any = None,
    **provenance: Any,
) -> PublishResult:
    """Build the folder of ``source`` (see :func:`build_publish_folder`) and upload it to ``repo_id``.

    Uses ``huggingface_hub.HfApi``: ``create_repo(repo_id, exist_ok=True)`` then ``upload_folder``. With
    ``dry_run=DIR`` the folder is written to DIR and nothing is uploaded. The result's ``commit`` is
    the revision to pin as ``hf_revision`` in the registry.
    """
    check_repo_id(repo_id)
    if dry_run is not None:
        full, folder = build_publish_folder(source, dry_run, name=name, repo_id=repo_id, **provenance)
        return PublishResult(full, folder, sha256sum(folder / WEIGHTS_FILENAME), repo_id)
    with tempfile.TemporaryDirectory(prefix="patchvae-publish-") as tmp:
        full, folder = build_publish_folder(source, Path(tmp) / "folder", name=name, repo_id=repo_id, **provenance)
        sha = sha256sum(folder / WEIGHTS_FILENAME)
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        api.create_repo(repo_id, exist_ok=True, private=private)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=os.fspath(folder),
            commit_message=commit_message or f"Upload {full} (sha256 {sha[:12]})",
        )
    commit = getattr(info, "oid", None)
    url = getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}"
    log.info("uploaded %s to %s at revision %s", full, repo_id, commit)
    return PublishResult(full, folder, sha, repo_id, commit, url)
