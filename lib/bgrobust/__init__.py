"""bgrobust: are single-cell representations confounded by background cells?

The library behind the executable reproduction of Gupta, Moses & Lu (MLCB 2025).
Modules, in the order data flows through them:

``classes``   the 15 localization classes and their orders
``synth``     the synthetic ORF-GFP screen (the default data, with ground truth)
``io``        readers for real data (yeastgfp labels, a screen manifest, PCI crops)
``segment``   cell segmentation and its scoring against truth
``crops``     single-cell crops, the paper's filters, cell-free crops
``dataset``   the cached pipeline screen -> crops used by every chapter
``runbook``   the papermill runner that executes the book's chapters
"""
__version__ = "0.1.0"
