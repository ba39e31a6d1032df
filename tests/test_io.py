"""Real-data readers (bgrobust.io) on small files written to tmp_path: no shared data needed."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

from bgrobust.vocabulary import CLASSES
from bgrobust.io import (
    DataError,
    HUH_LOCALIZATIONS,
    gene_to_orf,
    huh_labels,
    join_by_orf,
    load_screen,
    multi_localized,
    read_huh_table,
    read_image,
    read_manifest,
    read_pci_crops,
    single_localized,
    write_manifest,
)
from bgrobust.vocabulary import CHANNELS
from bgrobust.screen import LazyImages, Screen

# ----------------------------------------------------------------------------- images


def test_read_image_tiff_and_npy(tmp_path):
    plane = np.arange(12, dtype=np.uint16).reshape(3, 4)
    tifffile.imwrite(tmp_path / "a.tif", plane)
    np.save(tmp_path / "b.npy", plane.astype(np.float32))
    assert np.array_equal(read_image(tmp_path / "a.tif"), plane)
    assert read_image(tmp_path / "a.tif").dtype == np.uint16
    out = read_image(tmp_path / "b.npy", expect_shape=(3, 4))
    assert out.dtype == np.float32 and np.array_equal(out, plane)


def test_read_image_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"GFP image .*nothere\.tif: file not found"):
        read_image(tmp_path / "nothere.tif", what="GFP image")


def test_read_image_corrupt_file_chains_the_cause(tmp_path):
    (tmp_path / "broken.tif").write_bytes(b"this is not a tiff at all")
    with pytest.raises(DataError, match=r"broken\.tif: cannot be read as an image") as info:
        read_image(tmp_path / "broken.tif")
    assert info.value.__cause__ is not None
    assert isinstance(info.value, ValueError)


def test_read_image_folder_and_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        read_image(tmp_path)
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(DataError, match=r"x\.bmp: unsupported file type '\.bmp'"):
        read_image(tmp_path / "x.bmp")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(DataError, match=r"x\.png: cannot be read as an image"):
        read_image(tmp_path / "x.png")


@pytest.mark.parametrize(
    "shape, message",
    [
        ((3, 16, 16), r"has a channel axis \(shape \(3, 16, 16\)\)"),
        ((16, 16, 3), r"has a channel axis \(shape \(16, 16, 3\)\)"),
        ((10, 16, 16), r"is a stack of 10 planes"),
        ((16,), r"has 1 dimension\(s\)"),
    ],
)
def test_read_image_not_a_plane(tmp_path, shape, message):
    np.save(tmp_path / "img.npy", np.zeros(shape, np.uint8))
    with pytest.raises(DataError, match=r"img\.npy: " + message):
        read_image(tmp_path / "img.npy")


def test_read_image_channel_axis_in_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(DataError, match=r"rgb\.tif: has a channel axis"):
        read_image(tmp_path / "rgb.tif")


def test_read_image_wrong_shape(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((32, 30), np.uint16))
    with pytest.raises(DataError, match=r"a\.tif: shape \(32, 30\), expected \(32, 32\)"):
        read_image(tmp_path / "a.tif", expect_shape=(32, 32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_read_image_non_finite_pixels(tmp_path, bad):
    plane = np.zeros((8, 8), np.float32)
    plane[1, 2] = bad
    tifffile.imwrite(tmp_path / "f.tif", plane)
    with pytest.raises(DataError, match=r"f\.tif: 1 NaN or infinite pixel\(s\), the first at \(y=1, x=2\)"):
        read_image(tmp_path / "f.tif")


def test_read_image_unsupported_dtype(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((4, 4), bool))
    with pytest.raises(DataError, match=r"m\.npy: unsupported pixel type bool"):
        read_image(tmp_path / "m.npy")


# ----------------------------------------------------------------------------- yeastgfp

HEAD = ["orfid", "yORF", "gene name", "GFP tagged?", "GFP visualized?", "TAP visualized?",
        "abundance", "error", "localization summary", "ambiguous", *HUH_LOCALIZATIONS]


def write_huh(path, rows, *, drop=(), replace=None):
    """Write a table in the yeastgfp format; rows are (orf, gene, flags, ambiguous)."""
    head = [c for c in HEAD if c not in drop]
    lines = ["\t".join(head) + "\t"]
    for n, (orf, gene, flags, ambiguous) in enumerate(rows):
        values = {"orfid": str(n), "yORF": orf, "gene name": gene, "GFP tagged?": "tagged",
                  "GFP visualized?": "visualized", "TAP visualized?": "NA", "abundance": "10",
                  "error": "NA", "localization summary": ",".join(flags),
                  "ambiguous": "T" if ambiguous else "F"}
        values.update({c: "T" if c in flags else "F" for c in HUH_LOCALIZATIONS})
        if replace:
            values.update(replace.get(n, {}))
        lines.append("\t".join(values[c] for c in head) + "\t\t")
    path.write_text("\n".join(lines) + "\n")
    return path


ROWS = [
    ("YA01", "GA1", ["ER"], False),                  # single ER
    ("YA02", "GA2", ["ER"], False),                  # single ER
    ("YA03", "GA3", ["ER", "early Golgi"], False),   # ER among the 15, but not exclusively
    ("YA04", "GA4", ["ER"], True),                   # ambiguous
    ("YA05", "GA5", ["actin", "ER"], False),         # multi
    ("ya06 ", "GA6", ["nucleus"], False),            # single nucleus (ORF needs cleaning)
    ("YA07", "", [], False),                         # no localization
    ("YA08", "GA8", ["cytoplasm", "nucleus", "bud"], True),  # multi, ambiguous
]


@pytest.fixture
def huh(tmp_path):
    return read_huh_table(write_huh(tmp_path / "allOrfData.txt", ROWS))


def test_read_huh_table(huh, tmp_path):
    assert len(huh) == len(ROWS)
    assert not any(str(c).startswith("Unnamed") for c in huh.columns)
    assert huh["ER"].dtype == bool and huh["ambiguous"].tolist()[3]
    assert huh["yORF"].tolist()[5] == "YA06"
    assert huh.attrs["source"].endswith("allOrfData.txt")


def test_single_localized_rule(huh):
    labels = single_localized(huh, min_proteins=0)
    assert labels.columns.tolist() == ["orf", "gene", "kind", "localization", "localizations"]
    assert labels[["orf", "localization"]].values.tolist() == [
        ["YA01", "ER"], ["YA02", "ER"], ["YA06", "nucleus"]]
    assert set(labels["kind"]) == {"single"}
    assert labels["localizations"].tolist()[0] == ("ER",)
    assert len(single_localized(huh, min_proteins=0, exclusive=False)) == 4      # + YA03
    assert len(single_localized(huh, min_proteins=0, drop_ambiguous=False)) == 4  # + YA04


def test_single_localized_drops_small_classes(huh):
    with pytest.warns(UserWarning, match=r"allOrfData\.txt: excluded class.*'nucleus': 1"):
        labels = single_localized(huh, min_proteins=2)
    assert labels["localization"].tolist() == ["ER", "ER"]
    assert labels.attrs["excluded_classes"]["nucleus"] == 1


def test_single_localized_empty_class(huh):
    with pytest.warns(UserWarning, match=r"'peroxisome': 0"):
        labels = single_localized(huh, classes=["ER", "peroxisome"], min_proteins=1)
    assert set(labels["localization"]) == {"ER"}
    with pytest.raises(DataError, match=r"allOrfData\.txt: no class has 1 or more"):
        single_localized(huh, classes=["peroxisome"], min_proteins=1)


def test_unknown_class_names(huh):
    with pytest.raises(ValueError, match=r"allOrfData\.txt: unknown localization class.*'plasma'"):
        single_localized(huh, classes=["ER", "plasma"])
    with pytest.raises(ValueError, match=r"unknown localization class.*'Nucleus'"):
        multi_localized(huh, classes=["Nucleus", "ER"])


def test_multi_localized(huh):
    labels = multi_localized(huh)
    assert labels["orf"].tolist() == ["YA05", "YA08"]
    assert labels["localizations"].tolist() == [("actin", "ER"), ("cytoplasm", "nucleus")]
    assert labels["localization"].isna().all() and set(labels["kind"]) == {"multi"}
    assert multi_localized(huh, drop_ambiguous=True)["orf"].tolist() == ["YA05"]


def test_huh_labels_one_row_per_orf(huh):
    labels = huh_labels(huh, min_proteins=0)
    assert not labels["orf"].duplicated().any()
    assert labels["kind"].value_counts().to_dict() == {"single": 3, "multi": 2}


def test_read_huh_table_duplicate_orfs(tmp_path):
    rows = ROWS + [("ya01", "X", ["ER"], False), ("YA05 ", "Y", [], False)]
    path = write_huh(tmp_path / "dup.txt", rows)
    with pytest.raises(DataError, match=r"dup\.txt: duplicate ORF\(s\) YA01, YA05"):
        read_huh_table(path)


def test_read_huh_table_bad_flag(tmp_path):
    path = write_huh(tmp_path / "bad.txt", ROWS, replace={1: {"ER": "yes"}})
    with pytest.raises(DataError, match=r"bad\.txt: column 'ER' must hold T or F, got line 3 \('yes'\)"):
        read_huh_table(path)


def test_read_huh_table_missing_column_and_file(tmp_path):
    path = write_huh(tmp_path / "short.txt", ROWS, drop=("nucleus",))
    with pytest.raises(DataError, match=r"short\.txt: missing column\(s\) \['nucleus'\]"):
        read_huh_table(path)
    with pytest.raises(DataError, match=r"none\.txt: file not found"):
        read_huh_table(tmp_path / "none.txt")
    (tmp_path / "comma.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"comma\.csv: missing column"):
        read_huh_table(tmp_path / "comma.csv")


def test_join_by_orf(huh):
    strains = pd.DataFrame({"strain": ["s0", "s1", "s2"], "orf": [" ya01", "YA05", "YZZZ"],
                            "gene": ["", "mine", ""]})
    labels = huh_labels(huh, min_proteins=0)
    with pytest.warns(UserWarning, match=r"1 of 3 strain\(s\) have no label.*YZZZ"):
        out = join_by_orf(strains, labels)
    assert out["kind"].tolist() == ["single", "multi", "unlabelled"]
    assert out["localization"].tolist()[0] == "ER"
    assert pd.isna(out["localization"].tolist()[1]) and pd.isna(out["localization"].tolist()[2])
    assert out["localizations"].tolist() == [("ER",), ("actin", "ER"), ()]
    assert out["gene"].tolist() == ["GA1", "mine", ""]
    assert out.attrs["join"] == {"matched": 2, "unmatched": 1}
    assert strains.columns.tolist() == ["strain", "orf", "gene"]  # input untouched


def test_join_by_orf_infers_kind_and_rejects_duplicates():
    strains = pd.DataFrame({"strain": ["a"], "orf": ["Y1"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = join_by_orf(strains, pd.DataFrame({"orf": ["y1"], "localization": ["actin"]}))
    assert out["kind"].tolist() == ["single"]
    with pytest.raises(DataError, match=r"duplicate ORF\(s\) Y1"):
        join_by_orf(strains, pd.DataFrame({"orf": ["Y1", "y1 "], "localization": ["ER", "ER"]}))
    with pytest.raises(DataError, match="strains table has no 'orf' column"):
        join_by_orf(pd.DataFrame({"strain": ["a"]}), pd.DataFrame({"orf": ["Y1"], "localization": ["ER"]}))


# ----------------------------------------------------------------------------- manifest


def tiny_screen(dtype=np.uint16, seed=0):
    """2 strains x 3 fields of (3, 32, 32) images."""
    rng = np.random.default_rng(seed)
    strains = pd.DataFrame({
        "strain": ["s0", "s1"], "orf": ["YA01", "YA05"], "gene": ["GA1", "GA5"],
        "plate": [1, 2], "well": ["B07", "C12"], "kind": ["single", "multi"],
        "localization": ["ER", None],
    })
    fields = pd.DataFrame({
        "field": range(6), "strain": ["s0"] * 3 + ["s1"] * 3, "plate": [1] * 3 + [2] * 3,
        "well": ["B07"] * 3 + ["C12"] * 3, "site": [0, 1, 2] * 2,
    })
    images = (rng.random((6, 3, 32, 32)) * 4000).astype(dtype)
    return Screen(strains=strains, fields=fields, images=images)


def test_write_manifest_load_screen_round_trip(tmp_path):
    screen = tiny_screen()
    path = write_manifest(screen, tmp_path / "screen")
    assert path == tmp_path / "screen" / "manifest.csv"
    manifest = pd.read_csv(path)
    assert manifest["gfp"].iloc[0] == "images/field00000_gfp.tif"  # relative paths
    loaded = load_screen(path)
    assert isinstance(loaded.images, LazyImages) and loaded.n_fields == 6
    for i in range(6):
        image = loaded.image(i)
        assert image.dtype == np.uint16 and image.shape == (3, 32, 32)
        assert np.array_equal(image, screen.image(i))
    assert loaded.strains[["strain", "orf", "gene", "plate", "well"]].values.tolist() == \
        screen.strains[["strain", "orf", "gene", "plate", "well"]].values.tolist()
    assert loaded.fields[["field", "strain", "site"]].values.tolist() == \
        screen.fields[["field", "strain", "site"]].values.tolist()
    assert set(loaded.strains["kind"]) == {"unlabelled"}
    assert loaded.meta["manifest"].endswith("manifest.csv")


def test_load_screen_with_labels(tmp_path, huh):
    path = write_manifest(tiny_screen(), tmp_path / "screen")
    loaded = load_screen(path, labels=huh_labels(huh, min_proteins=0))
    assert loaded.strains["kind"].tolist() == ["single", "multi"]
    assert loaded.strains["localization"].tolist()[0] == "ER"


def test_round_trip_float_images_come_back_float32(tmp_path):
    screen = tiny_screen(dtype=np.float64)
    loaded = load_screen(write_manifest(screen, tmp_path / "s"))
    assert loaded.image(0).dtype == np.float32
    np.testing.assert_allclose(loaded.image(0), screen.image(0), rtol=1e-6)


def test_write_manifest_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"s is not empty \(1 entries: notes.txt\).*overwrite=True"):
        write_manifest(tiny_screen(), tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["notes.txt"]
    assert not list(tmp_path.glob(".s.tmp-*"))
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    assert write_manifest(tiny_screen(), tmp_path / "empty").is_file()


def test_write_manifest_overwrite_removes_only_its_own_files(tmp_path):
    folder = tmp_path / "s"
    write_manifest(tiny_screen(), folder)  # 6 fields
    (folder / "notes.txt").write_text("mine")
    (folder / "raw").mkdir()
    tifffile.imwrite(folder / "raw" / "plate1.tif", np.ones((4, 4), np.uint16))
    tifffile.imwrite(folder / "images" / "my_extra.tif", np.ones((4, 4), np.uint16))
    small = tiny_screen(seed=3)
    small = Screen(small.strains, small.fields.iloc[:2].reset_index(drop=True), small.images[:2])
    path = write_manifest(small, folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "raw" / "plate1.tif").is_file()
    assert (folder / "images" / "my_extra.tif").is_file()
    assert sorted(p.name for p in (folder / "images").glob("field*")) == [
        f"field{i:05d}_{c}.tif" for i in range(2) for c in sorted(CHANNELS)]
    loaded = load_screen(path)
    assert loaded.n_fields == 2 and np.array_equal(loaded.image(1), small.image(1))
    assert not list(tmp_path.glob(".s.tmp-*"))


def test_write_manifest_overwrite_never_replaces_a_foreign_file(tmp_path):
    folder = tmp_path / "s"
    (folder / "images").mkdir(parents=True)
    tifffile.imwrite(folder / "images" / "field00000_gfp.tif", np.ones((4, 4), np.uint16))
    with pytest.raises(FileExistsError, match=r"field00000_gfp.tif, which an earlier write_manifest did not write"):
        write_manifest(tiny_screen(), folder, overwrite=True)
    assert tifffile.imread(folder / "images" / "field00000_gfp.tif").shape == (4, 4)
    assert not (folder / "manifest.csv").exists()


def write_fields(folder, n=2, shape=(8, 8)):
    """n fields of one strain; returns the manifest rows."""
    rows = []
    for i in range(n):
        row = {"strain": "s0", "orf": "YA01", "plate": "1", "well": "B07", "field": str(i)}
        for channel in CHANNELS:
            name = f"f{i}_{channel}.tif"
            tifffile.imwrite(folder / name, np.full(shape, i + 1, np.uint16))
            row[channel] = name
        rows.append(row)
    return rows


def manifest_csv(folder, rows, name="manifest.csv"):
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_read_manifest_happy_path_normalizes(tmp_path):
    rows = write_fields(tmp_path)
    rows[1]["plate"] = "1.0"
    for row in rows:
        row["well"] = " b7"
    manifest = read_manifest(manifest_csv(tmp_path, rows))
    assert manifest["well"].tolist() == ["B07", "B07"]
    assert manifest["plate"].tolist() == [1, 1] and manifest["field"].tolist() == [0, 1]
    assert manifest["gene"].tolist() == ["", ""]
    assert manifest["gfp"].iloc[0] == str((tmp_path / "f0_gfp.tif").resolve())


def test_read_manifest_parquet(tmp_path):
    rows = write_fields(tmp_path)
    frame = pd.DataFrame(rows).astype({"plate": int, "field": int})
    frame.to_parquet(tmp_path / "m.parquet")
    screen = load_screen(tmp_path / "m.parquet")
    assert screen.n_fields == 2 and screen.image(1).max() == 2


def test_read_manifest_missing_file_and_type(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_manifest(tmp_path / "nope.csv")
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"m\.xlsx: unsupported file type"):
        read_manifest(tmp_path / "m.xlsx")


def test_read_manifest_missing_columns(tmp_path):
    rows = write_fields(tmp_path)
    for row in rows:
        del row["gfp"], row["well"]
    with pytest.raises(DataError, match=r"manifest\.csv: missing column\(s\) \['well', 'gfp'\]; .*"
                                        r"\(and optionally nucleus, cytoplasm\)"):
        read_manifest(manifest_csv(tmp_path, rows))


def test_read_manifest_empty(tmp_path):
    (tmp_path / "empty.csv").write_text(",".join(["strain", "orf", "plate", "well", "field", *CHANNELS]) + "\n")
    with pytest.raises(DataError, match=r"empty\.csv: no fields"):
        read_manifest(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(DataError, match=r"blank\.csv: no fields"):
        read_manifest(tmp_path / "blank.csv")


def test_read_manifest_duplicate_strain_field(tmp_path):
    rows = write_fields(tmp_path, n=3)
    rows[2]["field"] = "1"
    with pytest.raises(DataError, match=r"duplicate \(strain, field\): strain 's0' field 1"):
        read_manifest(manifest_csv(tmp_path, rows))


def test_read_manifest_paths_pointing_at_nothing(tmp_path):
    rows = write_fields(tmp_path, n=4)
    for row in rows:
        row["gfp"] = "missing/" + row["gfp"]
    rows[0]["cytoplasm"] = ""
    rows[3]["nucleus"] = "gone.tif"
    with pytest.raises(DataError, match=r"manifest\.csv: 6 image path\(s\) point at no file") as info:
        read_manifest(manifest_csv(tmp_path, rows))
    message = str(info.value)
    assert message.count("missing/") == 4  # the first five are listed, in file order
    assert "line 2 gfp: missing/f0_gfp.tif; line 2 cytoplasm: (empty); line 3 gfp" in message
    assert "gone.tif" not in message and message.endswith("(6 in all)")


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("plate", "one", r"column 'plate' must hold integers, got line 3: 'one'"),
        ("field", "1.5", r"column 'field' must hold integers, got line 3: '1.5'"),
        ("well", "Z01", r"malformed well name\(s\) line 3: 'Z01'.*e\.g\. 'B07'"),
        ("well", "B25", r"malformed well name\(s\) line 3: 'B25'"),
        ("well", "7B", r"malformed well name\(s\) line 3: '7B'"),
        ("strain", " ", r"empty 'strain' on line 3"),
        ("orf", "YB02", r"strain\(s\) s0 have rows with different orf"),
    ],
)
def test_read_manifest_bad_values(tmp_path, column, value, message):
    rows = write_fields(tmp_path)
    rows[1][column] = value
    with pytest.raises(DataError, match=r"manifest\.csv: " + message):
        read_manifest(manifest_csv(tmp_path, rows))


def test_load_screen_channel_shapes_differ(tmp_path):
    rows = write_fields(tmp_path)
    tifffile.imwrite(tmp_path / "f1_nucleus.tif", np.ones((8, 9), np.uint16))
    screen = load_screen(manifest_csv(tmp_path, rows))
    assert screen.image(0).shape == (3, 8, 8)
    with pytest.raises(DataError, match=r"field 1 \(strain 's0', site 1\).*differ in shape.*nucleus \(8, 9\)"):
        screen.image(1)


def test_load_screen_mixed_dtypes_become_float32(tmp_path):
    rows = write_fields(tmp_path)
    tifffile.imwrite(tmp_path / "f0_gfp.tif", np.full((8, 8), 3, np.uint8))
    image = load_screen(manifest_csv(tmp_path, rows)).image(0)
    assert image.dtype == np.float32 and image[0, 0, 0] == 3


def test_load_screen_bad_file_named_at_read_time(tmp_path):
    rows = write_fields(tmp_path)
    (tmp_path / "f1_cytoplasm.tif").write_bytes(b"garbage")
    screen = load_screen(manifest_csv(tmp_path, rows))
    with pytest.raises(DataError, match=r"cytoplasm image of field 1 .*f1_cytoplasm\.tif: cannot be read"):
        screen.image(1)
    with pytest.raises(IndexError):
        screen.image(2)


def test_load_screen_wrong_plane_count(tmp_path):
    rows = write_fields(tmp_path)
    tifffile.imwrite(tmp_path / "f0_gfp.tif", np.zeros((3, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(DataError, match=r"gfp image of field 0 .*f0_gfp\.tif: has a channel axis"):
        load_screen(manifest_csv(tmp_path, rows)).image(0)


# ----------------------------------------------------------------------------- PCI crops


def write_pci(root, genes=("AAA1", "BBB2"), cells=((1, 3), (2, 10)), shape=(64, 64)):
    rng = np.random.default_rng(1)
    for gene in genes:
        (root / "images" / gene).mkdir(parents=True, exist_ok=True)
        for field, cell in cells:
            for channel, scale in (("gfp", 0.5), ("rfp", 1.0)):
                crop = (rng.random(shape) * scale).astype(np.float32)
                tifffile.imwrite(root / "images" / gene / f"{gene}_{field}_rfp_{cell}_{channel}.tif", crop)
    return root


def test_read_pci_crops(tmp_path):
    write_pci(tmp_path)
    (tmp_path / "images" / "AAA1" / "notes.txt").write_text("ignored")
    crops, table = read_pci_crops(tmp_path)
    assert crops.shape == (4, 2, 64, 64) and crops.dtype == np.float32
    assert table.columns.tolist() == ["gene", "field", "cell", "gfp_path", "rfp_path"]
    assert table[["gene", "field", "cell"]].values.tolist() == [
        ["AAA1", 1, 3], ["AAA1", 2, 10], ["BBB2", 1, 3], ["BBB2", 2, 10]]
    assert np.array_equal(crops[0, 0], tifffile.imread(table["gfp_path"][0]))
    assert np.array_equal(crops[0, 1], tifffile.imread(table["rfp_path"][0]))
    assert crops[:, 0].max() <= 0.5 < crops[:, 1].max()
    crops2, _ = read_pci_crops(tmp_path / "images")  # the images folder itself works too
    assert np.array_equal(crops, crops2)


def test_read_pci_crops_missing_or_empty(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: not found"):
        read_pci_crops(tmp_path / "nowhere")
    (tmp_path / "images" / "AAA1").mkdir(parents=True)
    with pytest.raises(DataError, match=r"images: no crops found"):
        read_pci_crops(tmp_path)


def test_read_pci_crops_missing_partner(tmp_path):
    write_pci(tmp_path)
    (tmp_path / "images" / "BBB2" / "BBB2_2_rfp_10_rfp.tif").unlink()
    with pytest.raises(DataError, match=r"gfp file\(s\) without their rfp partner: .*BBB2_2_rfp_10_gfp\.tif"):
        read_pci_crops(tmp_path)
    (tmp_path / "images" / "BBB2" / "BBB2_2_rfp_10_gfp.tif").unlink()
    (tmp_path / "images" / "AAA1" / "AAA1_1_rfp_3_gfp.tif").unlink()
    with pytest.raises(DataError, match=r"rfp file\(s\) without their gfp partner: .*AAA1_1_rfp_3_rfp\.tif"):
        read_pci_crops(tmp_path)


def test_read_pci_crops_wrong_shape_nan_range(tmp_path):
    write_pci(tmp_path)
    bad = tmp_path / "images" / "AAA1" / "AAA1_2_rfp_10_rfp.tif"
    tifffile.imwrite(bad, np.zeros((64, 60), np.float32))
    with pytest.raises(DataError, match=r"PCI rfp crop .*AAA1_2_rfp_10_rfp\.tif: shape \(64, 60\), expected \(64, 64\)"):
        read_pci_crops(tmp_path)
    crop = np.zeros((64, 64), np.float32)
    crop[5, 6] = np.nan
    tifffile.imwrite(bad, crop)
    with pytest.raises(DataError, match=r"AAA1_2_rfp_10_rfp\.tif: 1 NaN or infinite pixel"):
        read_pci_crops(tmp_path)
    tifffile.imwrite(bad, np.full((64, 64), 2.0, np.float32))
    with pytest.raises(DataError, match=r"AAA1_2_rfp_10_rfp\.tif: values 2\.0\.\.2\.0 outside 0\.0\.\.1\.0"):
        read_pci_crops(tmp_path)
    crops, _ = read_pci_crops(tmp_path, value_range=None)
    assert crops[1, 1].max() == 2.0


def test_read_pci_crops_gene_folder_mismatch(tmp_path):
    write_pci(tmp_path, genes=("AAA1",))
    (tmp_path / "images" / "AAA1" / "AAA1_1_rfp_3_gfp.tif").rename(
        tmp_path / "images" / "AAA1" / "CCC3_1_rfp_3_gfp.tif")
    with pytest.raises(DataError, match=r"CCC3_1_rfp_3_gfp\.tif: named for gene 'CCC3' but in folder 'AAA1'"):
        read_pci_crops(tmp_path)


def test_gene_to_orf(tmp_path):
    (tmp_path / "sce.csv").write_text("ORF,SGDID,GENE\nYMR056C,S1,AAC1\nYBR085W,S2,aac3\nYX,S3,\n")
    assert gene_to_orf(tmp_path / "sce.csv") == {"AAC1": "YMR056C", "AAC3": "YBR085W"}
    (tmp_path / "dup.csv").write_text("ORF,GENE\nY1,AAC1\nY2,AAC1\n")
    with pytest.raises(DataError, match=r"dup\.csv: gene\(s\) listed more than once: AAC1"):
        gene_to_orf(tmp_path / "dup.csv")
    (tmp_path / "cols.csv").write_text("orf,name\nY1,A\n")
    with pytest.raises(DataError, match=r"cols\.csv: missing column\(s\) \['ORF', 'GENE'\]"):
        gene_to_orf(tmp_path / "cols.csv")
    with pytest.raises(DataError, match=r"none\.csv: file not found"):
        gene_to_orf(tmp_path / "none.csv")


def test_classes_constant_matches_table_columns():
    assert set(CLASSES) <= set(HUH_LOCALIZATIONS)
