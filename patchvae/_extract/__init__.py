"""Internals of :mod:`patchvae.features`: input decoding (:mod:`.inputs`) and feature file writers (:mod:`.writers`)."""
