"""bgrobust: are single-cell representations confounded by background cells?

The library behind the executable reproduction of Gupta, Moses & Lu (MLCB 2025).
Modules, in the order data flows through them:

``vocabulary``  classes, channels, experiments and models: keys, titles, colours, one order
``synth``       the synthetic ORF-GFP screen (the default data, with ground truth; ``synth.realism``)
``io``          readers for real data (yeastgfp labels, a screen manifest, PCI crops)
``screen``      the Screen container (strains, fields, images) shared by synthetic and real screens
``segment``     cell segmentation and its scoring against truth
``crops``       single-cell crops, the paper's filters, cell-free crops
``dataset``     screen -> crops, cached (``open_dataset``, the dataset every chapter starts from)
``imageops``    compositing and per-protein standardisation (settings and training remedies)
``settings``    the five image settings: background swaps, masks, cell-free backgrounds
``models``      PyTorch PIFiA, Paired Cell Inpainting and DeepLoc (original layer names)
``devices``     where networks run (CPU, or a CUDA GPU with ``device="auto"``)
``train``       each model trained with its own objective (cached, resumable)
``features``    features of a bgrobust model at any layer, pooled, cached
``extractors``  one protocol for every extractor: models, Modules, callables, precomputed features
``layers``      layer selection (appendix A)
``classify``    the paper's pairwise SVM protocol and the protein-held-out split
``experiments`` THE runner: settings -> features -> SVM grid -> ``ExperimentResults``
``tables``      Table 1 and its per-class views, from per-pair results (ours or the paper's)
``claims``      the paper's claims 4.1-4.4 as interval tests
``platecontrol`` can plates be read from cell-free backgrounds? (chapter 5's positive control)
``proportions`` multinomial heads, per-protein distributions, KL, truth comparison
``vae``, ``baselines``  a VAE and a hand-crafted structural baseline
``robustness``  the five experiments for any feature extractor, in one call
``plots``       the book's figures
``export``      features with the crop table as AnnData / parquet, results in the paper's CSV layout
``published``   the paper's published numbers, as data
``cache``       content keys, digests, atomic writes, verified cache entries
``constraints`` parameter constraints checked at the door
``paths``       the run folder (``$BGROBUST_RUNS`` or ``./runs``)
``profiles``    the parameter profiles (ci, demo, paper), shipped with the package
``runbook``     the papermill runner that executes the book's chapters (book tooling)
``sphinxext``   the book's Sphinx extension: tables numbered as tables (book tooling)
"""
__version__ = "0.1.0"
