"""The Huh et al. (2003) yeastgfp localization table, and labels joined to strains by ORF.

The table (``allOrfData.txt`` from yeastgenome.org) is tab-separated with a trailing tab
on every line.  Its columns are ``orfid, yORF, gene name, GFP tagged?, GFP visualized?,
TAP visualized?, abundance, error, localization summary``, then the flag ``ambiguous``
and 22 localization flags (``T``/``F``), 15 of which are the paper's classes
(:data:`bgrobust.vocabulary.CLASSES`).

Label tables
------------
:func:`single_localized`, :func:`multi_localized` and :func:`huh_labels` return label
tables with the columns ``orf``, ``gene``, ``kind`` (``"single"`` or ``"multi"``),
``localization`` (the class of a single-localized protein, else missing) and
``localizations`` (a tuple of class names).  :func:`join_by_orf` attaches such a table
to a strains table.

Examples
--------
>>> # SHARED_DATA: the folder of the real third-party data (``../shared/data`` beside the checkout)
>>> path = SHARED_DATA / "yeastgfp" / "allOrfData.txt"
>>> if path.exists():                                   # doctest: +SKIP
...     labels = single_localized(read_huh_table(path))
...     labels["localization"].value_counts()["cytoplasm"]
823
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..vocabulary import CLASSES, check_classes
from .images import DataError

#: The 22 localization flags of the yeastgfp table (the paper's 15 classes among them).
HUH_LOCALIZATIONS: tuple[str, ...] = (
    "mitochondrion", "vacuole", "spindle pole", "cell periphery", "punctate composite",
    "vacuolar membrane", "ER", "nuclear periphery", "endosome", "bud neck", "microtubule",
    "Golgi", "late Golgi", "peroxisome", "actin", "nucleolus", "cytoplasm", "ER to Golgi",
    "early Golgi", "lipid particle", "nucleus", "bud",
)
AMBIGUOUS = "ambiguous"
ORF_COLUMN = "yORF"
GENE_COLUMN = "gene name"
LABEL_COLUMNS: tuple[str, ...] = ("orf", "gene", "kind", "localization", "localizations")


def normalize_orf(values: pd.Series) -> pd.Series:
    """ORF names stripped of white space and upper-cased (``" ymr056c"`` -> ``"YMR056C"``)."""
    return values.astype("string").str.strip().str.upper()


def _source(table: pd.DataFrame) -> str:
    return str(table.attrs.get("source", "yeastgfp table"))


def _first(values, n: int = 5) -> str:
    values = list(values)
    more = f" ... ({len(values)} in all)" if len(values) > n else ""
    return ", ".join(map(str, values[:n])) + more


def read_huh_table(path) -> pd.DataFrame:
    """Read and check the yeastgfp table (``allOrfData.txt``).

    Parameters
    ----------
    path : str or path-like
        The tab-separated table.

    Returns
    -------
    table : pandas.DataFrame
        One row per ORF, columns as in the file (the empty column made by the trailing
        tabs is dropped).  ``yORF`` is stripped and upper-cased; ``ambiguous`` and every
        localization flag are booleans; other columns are strings.  ``table.attrs["source"]``
        is the path, used in later error messages.

    Raises
    ------
    DataError
        If the file is missing or unreadable, lacks ``yORF``, ``gene name``,
        ``ambiguous`` or one of the 15 class columns, has a flag that is not ``T``/``F``,
        an empty ORF, or the same ORF twice (the message lists them).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"yeastgfp table {path}: file not found")
    try:
        with warnings.catch_warnings():
            # data lines end with one more tab than the header: index_col=False drops it
            warnings.filterwarnings("ignore", "Length of header", pd.errors.ParserWarning)
            table = pd.read_csv(path, sep="\t", index_col=False, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(f"yeastgfp table {path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    trailing = [c for c in table.columns if str(c).startswith("Unnamed:") and (table[c] == "").all()]
    table = table.drop(columns=trailing)

    required = [ORF_COLUMN, GENE_COLUMN, AMBIGUOUS, *CLASSES]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(
            f"yeastgfp table {path}: missing column(s) {missing} "
            "(is it tab-separated with the yeastgfp header?)"
        )
    if table.empty:
        raise DataError(f"yeastgfp table {path}: no rows")

    for column in [AMBIGUOUS, *(c for c in HUH_LOCALIZATIONS if c in table.columns)]:
        values = table[column].str.strip()
        bad = ~values.isin(["T", "F"])
        if bad.any():
            where = [f"line {i + 2} ({values[i]!r})" for i in table.index[bad]]
            raise DataError(
                f"yeastgfp table {path}: column {column!r} must hold T or F, got {_first(where)}"
            )
        table[column] = values == "T"

    orfs = normalize_orf(table[ORF_COLUMN])
    empty = table.index[orfs.isna() | (orfs == "")]
    if len(empty):
        raise DataError(f"yeastgfp table {path}: empty ORF name on line(s) {_first(i + 2 for i in empty)}")
    duplicated = orfs[orfs.duplicated()].unique()
    if len(duplicated):
        raise DataError(f"yeastgfp table {path}: duplicate ORF(s) {_first(duplicated)}")
    table[ORF_COLUMN] = orfs.astype(str)
    table[GENE_COLUMN] = table[GENE_COLUMN].str.strip()
    table.attrs["source"] = str(path)
    return table


def _flags(table: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """The boolean flag columns ``classes`` of ``table``, checked."""
    check_classes(classes, where=_source(table))
    missing = [c for c in classes if c not in table.columns]
    if missing:
        raise DataError(f"{_source(table)}: no column for class(es) {missing}")
    flags = table[list(classes)]
    if not all(pd.api.types.is_bool_dtype(flags[c]) for c in classes):
        raise DataError(f"{_source(table)}: class columns must be booleans (read it with read_huh_table)")
    return flags


def _label_frame(table, mask, kind, localization, localizations) -> pd.DataFrame:
    return pd.DataFrame({
        "orf": table.loc[mask, ORF_COLUMN].astype(str).to_numpy(),
        "gene": table.loc[mask, GENE_COLUMN].to_numpy(),
        "kind": kind,
        "localization": localization,
        "localizations": localizations,
    })


def single_localized(
    table: pd.DataFrame,
    classes: Sequence[str] = CLASSES,
    min_proteins: int = 5,
    *,
    exclusive: bool = True,
    drop_ambiguous: bool = True,
) -> pd.DataFrame:
    """The proteins with exactly one localization, as a label table.

    A protein is single-localized in class ``c`` when ``c`` is its only true flag and it
    is not flagged ``ambiguous``.  With ``exclusive=True`` (the default) "only" means
    among all 22 localization flags of the table, so a protein flagged ``Golgi`` and
    ``early Golgi`` (or ``cytoplasm`` and ``punctate composite``) is not single-localized;
    with ``exclusive=False`` only the flags of ``classes`` are counted.  This follows the
    paper ("Proteins labeled as 'ambiguous' or assigned to localization classes with
    fewer than five proteins were excluded").  Classes with fewer than ``min_proteins``
    such proteins are then dropped, with a warning.

    On the real ``allOrfData.txt`` the default rule gives 2576 proteins: cytoplasm 823,
    nucleus 496, mitochondrion 485, ER 266, vacuole 121, nucleolus 70, cell periphery 57,
    vacuolar membrane 54, nuclear periphery 53, spindle pole 39, endosome 34, actin 27,
    peroxisome 21, Golgi 15, bud neck 15 (no class dropped).  Keeping ambiguous proteins
    gives 2598; counting only the 15 class flags gives 2654 (2688 with ambiguous ones).

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`read_huh_table`.
    classes : sequence of str
        The localization classes to keep (names from :data:`bgrobust.vocabulary.CLASSES`).
    min_proteins : int
        Classes with fewer single-localized proteins are excluded.
    exclusive : bool
        Require the class to be the protein's only flag among all localization columns
        of the table, not only among ``classes``.
    drop_ambiguous : bool
        Exclude proteins flagged ``ambiguous``.

    Returns
    -------
    labels : pandas.DataFrame
        Columns ``orf, gene, kind ("single"), localization, localizations`` in table
        order; ``labels.attrs["excluded_classes"]`` maps each dropped class to its count.

    Raises
    ------
    ValueError
        If a name in ``classes`` is not one of the 15 classes.
    DataError
        If a class column is missing, or no class has ``min_proteins`` proteins.

    Examples
    --------
    >>> import pandas as pd
    >>> from bgrobust.vocabulary import CLASSES
    >>> table = pd.DataFrame({"yORF": ["YA", "YB"], "gene name": ["A", "B"],
    ...                       "ambiguous": [False, False],
    ...                       **{c: [c == "ER", c in ("ER", "actin")] for c in CLASSES}})
    >>> single_localized(table, min_proteins=0)[["orf", "localization"]].values.tolist()
    [['YA', 'ER']]
    """
    flags = _flags(table, classes)
    keep = flags.sum(axis=1) == 1
    if exclusive:
        others = [c for c in HUH_LOCALIZATIONS if c in table.columns and c not in classes]
        keep &= ~table[others].astype(bool).any(axis=1)
    if drop_ambiguous:
        keep &= ~table[AMBIGUOUS].astype(bool)
    localization = flags[keep].idxmax(axis=1)
    counts = localization.value_counts().reindex(list(classes), fill_value=0)
    excluded = {c: int(n) for c, n in counts.items() if n < min_proteins}
    if len(excluded) == len(counts):
        raise DataError(
            f"{_source(table)}: no class has {min_proteins} or more single-localized proteins "
            f"(counts: {dict(counts)})"
        )
    if excluded:
        warnings.warn(
            f"{_source(table)}: excluded class(es) with fewer than {min_proteins} "
            f"single-localized proteins: {excluded}",
            stacklevel=2,
        )
        localization = localization[~localization.isin(list(excluded))]
        keep = keep & table.index.isin(localization.index)
    values = localization.to_numpy(dtype=object)
    labels = _label_frame(table, keep, "single", values, [(c,) for c in values])
    labels.attrs["excluded_classes"] = excluded
    labels.attrs["source"] = _source(table)
    return labels


def multi_localized(
    table: pd.DataFrame, classes: Sequence[str] = CLASSES, *, drop_ambiguous: bool = False
) -> pd.DataFrame:
    """The proteins flagged in two or more of ``classes``, as a label table.

    Only the flags of ``classes`` count (other localization flags are ignored).  On the
    real ``allOrfData.txt`` this gives 1136 proteins (1093 when ``drop_ambiguous``).

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`read_huh_table`.
    classes : sequence of str
        The localization classes to consider.
    drop_ambiguous : bool
        Exclude proteins flagged ``ambiguous``.

    Returns
    -------
    labels : pandas.DataFrame
        Columns ``orf, gene, kind ("multi"), localization (missing), localizations``
        (a tuple of the protein's classes, in the order of ``classes``).

    Examples
    --------
    >>> import pandas as pd
    >>> from bgrobust.vocabulary import CLASSES
    >>> table = pd.DataFrame({"yORF": ["YA", "YB"], "gene name": ["A", "B"],
    ...                       "ambiguous": [False, False],
    ...                       **{c: [c == "ER", c in ("ER", "actin")] for c in CLASSES}})
    >>> multi_localized(table)["localizations"].tolist()
    [('actin', 'ER')]
    """
    flags = _flags(table, classes)
    keep = flags.sum(axis=1) >= 2
    if drop_ambiguous:
        keep &= ~table[AMBIGUOUS].astype(bool)
    names = [tuple(c for c in classes if row[c]) for _, row in flags[keep].iterrows()]
    return _label_frame(table, keep, "multi", None, names)


def huh_labels(
    table: pd.DataFrame, classes: Sequence[str] = CLASSES, min_proteins: int = 5
) -> pd.DataFrame:
    """Single- and multi-localized proteins in one label table (for :func:`join_by_orf`)."""
    single = single_localized(table, classes, min_proteins)
    multi = multi_localized(table, classes)
    labels = pd.concat([single, multi], ignore_index=True)
    labels.attrs = dict(single.attrs)
    return labels


def join_by_orf(strains: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Attach labels to a strains table by ORF (stripped, case-insensitive).

    Parameters
    ----------
    strains : pandas.DataFrame
        Must have an ``orf`` column (e.g. ``Screen.strains``).
    labels : pandas.DataFrame
        A label table (``orf`` and ``localization`` or ``localizations``; ``kind`` and
        ``gene`` optional), e.g. from :func:`huh_labels`.

    Returns
    -------
    strains : pandas.DataFrame
        A copy with ``kind``, ``localization`` and ``localizations`` taken from
        ``labels``; strains without a label get kind ``"unlabelled"``.  A missing or
        empty ``gene`` is filled from ``labels``.  ``attrs["join"]`` holds the counts
        ``{"matched": n, "unmatched": m}``; unmatched strains also raise a warning.

    Raises
    ------
    DataError
        If a column is missing or ``labels`` has the same ORF twice.

    Examples
    --------
    >>> import pandas as pd
    >>> strains = pd.DataFrame({"strain": ["s0", "s1"], "orf": ["ymr056c ", "YXX"]})
    >>> labels = pd.DataFrame({"orf": ["YMR056C"], "localization": ["mitochondrion"]})
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     out = join_by_orf(strains, labels)
    >>> out["kind"].tolist(), out.attrs["join"]
    (['single', 'unlabelled'], {'matched': 1, 'unmatched': 1})
    """
    for name, frame in (("strains", strains), ("labels", labels)):
        if "orf" not in frame.columns:
            raise DataError(f"join_by_orf: the {name} table has no 'orf' column")
    if "localization" not in labels.columns and "localizations" not in labels.columns:
        raise DataError("join_by_orf: the labels table has neither 'localization' nor 'localizations'")
    labels = labels.copy()
    labels["_key"] = normalize_orf(labels["orf"])
    duplicated = labels.loc[labels["_key"].duplicated(), "_key"].unique()
    if len(duplicated):
        raise DataError(f"join_by_orf: the labels table has duplicate ORF(s) {_first(duplicated)}")
    if "localization" not in labels.columns:
        labels["localization"] = None
    if "localizations" not in labels.columns:
        labels["localizations"] = [(c,) if isinstance(c, str) else () for c in labels["localization"]]
    if "kind" not in labels.columns:
        labels["kind"] = ["single" if isinstance(c, str) else "multi" for c in labels["localization"]]
    labels = labels.set_index("_key")

    out = strains.copy()
    key = normalize_orf(out["orf"])
    matched = key.isin(labels.index).fillna(False).to_numpy(dtype=bool)
    rows = labels.reindex(key.to_numpy())
    out["kind"] = rows["kind"].where(matched, "unlabelled").to_numpy(dtype=object)
    out["localization"] = [v if m and isinstance(v, str) else None
                           for v, m in zip(rows["localization"], matched)]
    out["localizations"] = [tuple(v) if m else () for v, m in zip(rows["localizations"], matched)]
    if "gene" in labels.columns:
        gene = out["gene"] if "gene" in out.columns else pd.Series(None, index=out.index, dtype=object)
        empty = gene.isna() | (gene.astype("string").str.strip() == "")
        out["gene"] = gene.where(~(empty.to_numpy() & matched), rows["gene"].to_numpy())
    n_unmatched = int((~matched).sum())
    if n_unmatched:
        warnings.warn(
            f"join_by_orf: {n_unmatched} of {len(out)} strain(s) have no label, e.g. ORF(s) "
            f"{_first(out.loc[~matched, 'orf'].tolist())}",
            stacklevel=2,
        )
    out.attrs["join"] = {"matched": int(matched.sum()), "unmatched": n_unmatched}
    return out
