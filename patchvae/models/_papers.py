"""The papers behind the model families, for model cards and ``config.json`` (``PretrainedCfg.paper`` keys).

A leaf module (no imports from the package): each family's ``default_cfgs`` names its paper, and
:func:`patchvae.models._publish.model_card` takes the card's introduction, citation and usage from it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAPERS", "Paper", "get_paper"]


@dataclass(frozen=True)
class Paper:
    reference: str  #: what ``config.json`` records as "paper" (an arXiv id where there is one)
    summary: str  #: the card's introduction: the source and what the family learns
    bibtex: str
    feature_layer: str  #: the layer the card's ``extract_features`` example reads
    has_backbone: bool  #: the family has a φ for ``create_backbone`` / fine-tuning


PAPERS: dict[str, Paper] = {
    "gupta2020": Paper(
        reference="arXiv:2004.03623",
        summary=("PatchVAE (Gupta, Singh, Shrivastava, CVPR 2020, [arXiv:2004.03623](https://arxiv.org/abs/2004.03623)) "
                 "learns a representation of local parts: a visibility map and an appearance code per part."),
        bibtex="""@inproceedings{gupta2020patchvae,
  title={PatchVAE: Learning Local Latent Codes for Recognition},
  author={Kamal Gupta and Saurabh Singh and Abhinav Shrivastava},
  booktitle={Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2020}
}""",
        feature_layer="pooled",
        has_backbone=True,
    ),
    "sixt2018": Paper(
        reference="Sixt 2018, MSc thesis, Freie Universität Berlin",
        summary=("From Sixt (2018, \"An Investigation into Image Area Dependencies using Unsupervised Learning\", MSc "
                 "thesis, FU Berlin): patch VAEs with block-local PixelCNN decoders and the global VAE baselines of "
                 "the thesis; the architecture is ours where the thesis gives none (docs/models.md)."),
        bibtex="""@mastersthesis{sixt2018investigation,
  title={An Investigation into Image Area Dependencies using Unsupervised Learning},
  author={Leon Sixt},
  school={Freie Universit{\\"a}t Berlin},
  year={2018}
}""",
        feature_layer="dense",
        has_backbone=False,
    ),
    "zhang2022": Paper(
        reference="Zhang, Xiao, Paige, Barber 2022",
        summary=("A VAE with a local (LPVAE) or full (FPVAE) autoregressive PixelCNN decoder, after Zhang, Xiao, Paige "
                 "and Barber (2022), \"Improving VAE-based Representation Learning\": the decoder models local "
                 "detail, so the latent keeps the global information."),
        bibtex="""@misc{zhang2022improving,
  title={Improving VAE-based Representation Learning},
  author={Mingtian Zhang and Tim Z. Xiao and Brooks Paige and David Barber},
  year={2022}
}""",
        feature_layer="latent",
        has_backbone=False,
    ),
}


def get_paper(key: str | None) -> Paper:
    """The :class:`Paper` of a ``PretrainedCfg.paper`` key or a recorded ``reference`` (None: PatchVAE's)."""
    if key is None:
        return PAPERS["gupta2020"]
    if key in PAPERS:
        return PAPERS[key]
    for paper in PAPERS.values():
        if paper.reference == key:
            return paper
    raise KeyError(f"unknown paper {key!r}; known: {sorted(PAPERS)}")
