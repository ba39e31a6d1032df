"""The embedded default data: a simulated yeast ORF-GFP screen with known truth.

See :mod:`bgrobust.synth.screen` for the screen, :mod:`~bgrobust.synth.patterns` for
the 15 localization patterns, :mod:`~bgrobust.synth.geometry` for cells and
:mod:`~bgrobust.synth.optics` for image formation.
"""
from .patterns import PATTERNS
from .screen import ScreenConfig, generate_screen, load_or_generate, make_strains, render_field, screen_key

__all__ = ["PATTERNS", "ScreenConfig", "generate_screen", "load_or_generate", "make_strains",
           "render_field", "screen_key"]
