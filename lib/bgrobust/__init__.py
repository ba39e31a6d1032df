"""bgrobust: are single-cell representations confounded by background cells?

The library behind the executable reproduction of Gupta, Moses & Lu (MLCB 2025).
Modules, in the order data flows through them:

``classes``   the 15 localization classes and their orders
``synth``     the synthetic ORF-GFP screen (the default data, with ground truth)
``io``        readers for real data (yeastgfp labels, a screen manifest, PCI crops)
``segment``   cell segmentation and its scoring against truth
``crops``     single-cell crops, the paper's filters, cell-free crops
``dataset``   the cached pipeline screen -> crops used by every chapter
``models``    PyTorch PIFiA, Paired Cell Inpainting and DeepLoc (original layer names)
``devices``   where networks run (CPU, or a CUDA GPU with ``device="auto"``)
``train``     each model trained with its own objective (cached, resumable)
``features``  features at any layer, pooled, cached
``settings``  the five image settings: background swaps, masks, cell-free backgrounds
``classify``  the paper's pairwise SVM protocol and the protein-held-out split
``tables``    Table 1 and its per-class views, from per-pair results (ours or the paper's)
``claims``    the paper's claims 4.1-4.4 as interval tests
``proportions`` multinomial heads, per-protein distributions, KL, truth comparison
``vae``, ``baselines`` a VAE and a hand-crafted structural baseline
``robustness`` the five experiments for any feature extractor
``published`` the paper's published numbers, as data
``pipeline``  the stages the chapters share
``runbook``   the papermill runner that executes the book's chapters
"""
__version__ = "0.1.0"
