"""The crop-folder readers on files written here, and on bad input (errors naming the file)."""
import numpy as np
import pandas as pd
import pytest
import tifffile

from bgrobust.dataset import from_pci_folder, read_crop_folder
from bgrobust.io import DataError
from bgrobust.io.crop_folder import attach_labels, read_crop_files, read_pci_files

S = 32
YY, XX = np.mgrid[:S, :S]
DISC = (YY - S // 2) ** 2 + (XX - S // 2) ** 2 < 81

HUH_HEADER = ["orfid", "yORF", "gene name", "GFP tagged?", "GFP visualized?", "TAP visualized?", "abundance",
              "error", "localization summary", "ambiguous", "mitochondrion", "vacuole", "spindle pole",
              "cell periphery", "punctate composite", "vacuolar membrane", "ER", "nuclear periphery", "endosome",
              "bud neck", "microtubule", "Golgi", "late Golgi", "peroxisome", "actin", "nucleolus", "cytoplasm",
              "ER to Golgi", "early Golgi", "lipid particle", "nucleus", "bud"]


def _huh(path, rows):
    """A tiny yeastgfp table: rows of (orf, gene, classes)."""
    lines = ["\t".join(HUH_HEADER)]
    for i, (orf, gene, classes) in enumerate(rows):
        flags = ["T" if c in classes else "F" for c in HUH_HEADER[10:]]
        lines.append("\t".join([str(i), orf, gene, "tagged", "visualized", "", "1", "NA", ",".join(classes), "F"]
                               + flags) + "\t")
    path.write_text("\n".join(lines) + "\n")
    return path


def _crop(seed):
    rng = np.random.default_rng(seed)
    gfp = (DISC * rng.uniform(200, 900) + rng.normal(100, 5, (S, S))).astype(np.uint16)
    cyto = (DISC * 700 + rng.normal(100, 5, (S, S))).astype(np.uint16)
    return gfp, cyto


def _per_channel_folder(tmp_path, n=4, **columns):
    rows = []
    for i in range(n):
        gfp, cyto = _crop(i)
        tifffile.imwrite(tmp_path / f"c{i}_gfp.tif", gfp, compression="lzw")
        tifffile.imwrite(tmp_path / f"c{i}_cyto.tif", cyto, compression="lzw")
        rows.append({"crop": f"c{i}", "protein": f"P{i % 2}", "gfp": f"c{i}_gfp.tif",
                     "cytoplasm": f"c{i}_cyto.tif"})
    table = pd.DataFrame(rows)
    for k, v in columns.items():
        table[k] = v
    table.to_csv(tmp_path / "crops.csv", index=False)
    return table


def test_one_file_per_channel_with_labels_and_masks(tmp_path):
    table = _per_channel_folder(tmp_path, label=["actin", "ER", "actin", "ER"])
    tifffile.imwrite(tmp_path / "m.tif", DISC.astype(np.uint8))
    table["mask"] = "m.tif"
    table.to_csv(tmp_path / "crops.csv", index=False)
    ds = read_crop_folder(tmp_path, progress=False)
    assert ds.crops.images.shape == (4, 2, S, S) and ds.crops.images.dtype == np.uint16
    assert ds.crops.table["localization"].tolist() == ["actin", "ER", "actin", "ER"]
    assert ds.report["masks"] == "given"
    np.testing.assert_array_equal(ds.crops.masks[0], DISC)
    np.testing.assert_array_equal(ds.crops.channel("gfp")[1], _crop(1)[0])


def test_multichannel_file_and_labels_from_the_huh_table(tmp_path):
    rows = []
    for i in range(4):
        tifffile.imwrite(tmp_path / f"c{i}.tif", np.stack(_crop(i)), compression="zlib")
        rows.append({"crop": i, "protein": ["GENEA", "GENEB"][i % 2], "orf": ["YAL001C", "YBR002W"][i % 2],
                     "file": f"c{i}.tif"})
    pd.DataFrame(rows).to_csv(tmp_path / "crops.csv", index=False)
    huh = _huh(tmp_path / "huh.txt", [("YAL001C", "GENEA", ["vacuole"]), ("YBR002W", "GENEB", ["ER", "nucleus"])])
    ds = read_crop_folder(tmp_path, huh_table=huh, min_proteins=1, progress=False)
    t = ds.crops.table
    assert t["localization"].iloc[0] == "vacuole" and pd.isna(t["localization"].iloc[1])
    assert t["kind"].tolist() == ["single", "unlabelled"] * 2  # the paper: single-localized only
    first = read_crop_folder(tmp_path, huh_table=huh, multi_localized="first", min_proteins=1,
                             progress=False)
    assert first.crops.table["localization"].tolist() == ["vacuole", "ER"] * 2
    assert first.crops.table["localizations"].iloc[1] == ("ER", "nucleus")
    assert ds.report["masks"].startswith("derived from the cytoplasm channel")


def test_missing_channel_file_names_the_file(tmp_path):
    _per_channel_folder(tmp_path)
    (tmp_path / "c2_cyto.tif").unlink()
    with pytest.raises(DataError, match=r"cytoplasm image of crop 'c2' \(crops\.csv\) .*c2_cyto\.tif: file not found"):
        read_crop_files(tmp_path, labels={"P0": "actin"}, progress=False)


def test_missing_channel_column_names_the_table(tmp_path):
    table = _per_channel_folder(tmp_path)
    table.drop(columns="cytoplasm").to_csv(tmp_path / "crops.csv", index=False)
    with pytest.raises(DataError, match=r"crops\.csv: needs a 'file' column .*missing \['cytoplasm'\]"):
        read_crop_files(tmp_path, progress=False)


def test_wrong_shape_names_the_file(tmp_path):
    _per_channel_folder(tmp_path)
    tifffile.imwrite(tmp_path / "c3_gfp.tif", np.zeros((S, S + 4), np.uint16))
    tifffile.imwrite(tmp_path / "c3_cyto.tif", np.zeros((S, S + 4), np.uint16))
    with pytest.raises(DataError, match=r"crop 'c3' \(crops\.csv\) .*c3_gfp\.tif: shape \(32, 36\), expected \(32, 32\)"):
        read_crop_files(tmp_path, labels={"P0": "actin"}, progress=False)


def test_wrong_number_of_planes_names_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((3, S, S), np.uint16), photometric="minisblack")
    pd.DataFrame({"crop": ["a"], "protein": ["P"], "label": ["ER"], "file": ["c.tif"]}).to_csv(
        tmp_path / "crops.csv", index=False)
    with pytest.raises(DataError, match=r"c\.tif: 3 plane\(s\), expected 2"):
        read_crop_files(tmp_path, progress=False)
    ds = read_crop_folder(tmp_path, channels=("gfp", "nucleus", "cytoplasm"), progress=False)
    assert ds.crops.channels == ("gfp", "nucleus", "cytoplasm")


def test_folder_with_no_labelled_protein(tmp_path):
    _per_channel_folder(tmp_path)
    with pytest.raises(DataError, match=r"crops\.csv: none of the 2 protein\(s\) \(P0, P1\) has a localization label"):
        read_crop_folder(tmp_path, progress=False)


def test_label_file_with_no_overlap_names_it(tmp_path):
    _per_channel_folder(tmp_path, orf=["YAL001C", "YAL002W", "YAL001C", "YAL002W"])
    huh = _huh(tmp_path / "huh.txt", [("YZZ999W", "OTHER", ["vacuole"])])
    with pytest.raises(DataError, match=r"label table .*huh\.txt: no ORF in common with the 4 crop\(s\)"):
        read_crop_folder(tmp_path, huh_table=huh, min_proteins=1, progress=False)


def test_unknown_label_and_bad_table(tmp_path):
    _per_channel_folder(tmp_path, label=["actin", "Golgi body", "actin", "ER"])
    with pytest.raises(DataError, match=r"crops\.csv: unknown localization class\(es\) \['Golgi body'\]"):
        read_crop_files(tmp_path, progress=False)
    pd.DataFrame({"crop": ["a", "a"], "protein": ["P", "P"]}).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(DataError, match=r"dup\.csv: crop id\(s\) listed more than once: a"):
        read_crop_files(tmp_path, "dup.csv", progress=False)
    with pytest.raises(DataError, match=r"nothere\.csv: file not found"):
        read_crop_files(tmp_path, "nothere.csv", progress=False)


def test_pci_reader_on_written_files(tmp_path):
    big = (np.mgrid[:64, :64] - 32) ** 2
    disc = big.sum(axis=0) < 15 ** 2
    gene = tmp_path / "images" / "GEN1"
    gene.mkdir(parents=True)
    for k in range(3):
        rng = np.random.default_rng(k)
        for ch in ("gfp", "rfp"):
            img = np.clip(disc * rng.uniform(0.5, 1) + rng.normal(0.05, 0.01, disc.shape), 0, 1)
            tifffile.imwrite(gene / f"GEN1_{k % 2}_rfp_{k}_{ch}.tif", img.astype(np.float32))
    ds = from_pci_folder(tmp_path, labels={"GEN1": "nucleolus"}, progress=False)
    assert ds.crops.channels == ("gfp", "cytoplasm") and len(ds.crops) == 3
    assert ds.crops.table["field"].nunique() == 2  # crops of one image field share it
    with pytest.raises(DataError, match=r"PCI crop folder .*: none of the 1 protein\(s\) \(GEN1\)"):
        read_pci_files(tmp_path)
    (gene / "GEN1_0_rfp_0_rfp.tif").unlink()
    with pytest.raises(DataError, match=r"gfp file\(s\) without their rfp partner: .*GEN1_0_rfp_0_gfp\.tif"):
        read_pci_files(tmp_path, labels={"GEN1": "nucleolus"})


def test_attach_labels_explicit_mapping_wins():
    t = pd.DataFrame({"protein": ["A", "B"], "label": ["actin", "ER"]})
    out = attach_labels(t, labels={"B": "vacuole"})
    assert out["localization"].tolist() == ["actin", "vacuole"]
    with pytest.raises(ValueError, match="multi_localized must be one of"):
        attach_labels(t, multi_localized="all")
