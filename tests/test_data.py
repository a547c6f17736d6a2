"""The data package: schemas, provenance, loader errors, values against the sources,
working-directory independence and reproducibility of the build.

Expected values are read from the raw files (``data/raw/``, in the repository) or the
source text at test time (never copied from the code under test). Tests that need the
copyrighted source text (``../shared/source-text`` beside the repository, or
``$USROK_SOURCE_TEXT``) skip with a clear reason when it is missing.
"""
from __future__ import annotations

import csv
import filecmp
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from usrok import data, data_catalogue, data_validation

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
RAW = DATA / "raw"
# The course's vetted extracts, beside the repository on maintainers' machines (not in a clone).
SHARED = ROOT.parent / "shared" / "data-sources"
SOURCE_TEXT = Path(os.environ.get(
    "USROK_SOURCE_TEXT", ROOT.parent / "shared" / "source-text" / "000_57fe028d7c869dbd.txt"))

needs_text = pytest.mark.skipif(
    not SOURCE_TEXT.is_file(),
    reason=f"source text not found at {SOURCE_TEXT} (set USROK_SOURCE_TEXT)")

# Chapters call load("<name>") with these names: renaming one breaks the book.
EXPECTED = ["us_troops_by_host", "usfk_troops_rebuild", "easi_stages", "gpr_realignment",
            "alliance_timeline", "rok_oda", "rok_oda_targets", "rok_deployments",
            "us_rok_exercises", "us_sites", "alliance_areas", "principles", "implications",
            "korean_peninsula_50m", "area_evidence"]


def descriptor() -> dict:
    return json.loads((DATA / "datapackage.json").read_text(encoding="utf-8"))


def tables() -> list[dict]:
    return [r for r in descriptor()["resources"] if "schema" in r]


def raw_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(autouse=True)
def _no_data_override(monkeypatch):
    monkeypatch.delenv("USROK_DATA", raising=False)


# ---------------------------------------------------------------------------
# The package as a whole
# ---------------------------------------------------------------------------

def test_frictionless_validates_the_package():
    from frictionless import Package

    report = Package(str(DATA / "datapackage.json")).validate()
    problems = report.flatten(["taskName", "rowNumber", "fieldName", "message"])
    assert report.valid, problems[:10]
    assert {t.name for t in report.tasks} == set(EXPECTED)


def test_package_checks_foreign_keys(tmp_path):
    """A dangling reference (gpr_realignment -> alliance_timeline) fails package validation."""
    from frictionless import Package

    copy = _copy_data(tmp_path)
    path = copy / "gpr_realignment.csv"
    rows = _read(path)
    col = rows[0].index("timeline_event_id")
    i = next(i for i, r in enumerate(rows) if i and r[col])
    rows[i][col] = "tl-1066-10-14"
    _write(path, rows)
    report = Package(str(copy / "datapackage.json")).validate()
    errors = [(task.name, e.to_dict().get("rowNumber"), e.type)
              for task in report.tasks for e in task.errors]
    assert ("gpr_realignment", i + 1, "foreign-key") in errors


def test_expected_resources_and_files_exist():
    names = [r["name"] for r in descriptor()["resources"]]
    assert sorted(names) == sorted(EXPECTED)
    for r in descriptor()["resources"]:
        assert (DATA / r["path"]).is_file(), r["path"]
        assert re.fullmatch(r"[a-z0-9_]+\.(csv|geojson)", r["path"]), "snake_case file names"


@pytest.mark.parametrize("name", EXPECTED)
def test_every_resource_has_sources_licence_description(name):
    r = next(x for x in descriptor()["resources"] if x["name"] == name)
    assert r.get("title") and len(r.get("description", "")) > 80
    assert r.get("sources"), "no sources"
    for s in r["sources"]:
        assert s.get("title") and s.get("path"), s
    assert r.get("licenses"), "no licence note"
    for lic in r["licenses"]:
        assert (lic.get("name") or lic.get("path")) and lic.get("title"), lic
    assert r.get("encoding") == "utf-8"


@pytest.mark.parametrize("res", tables(), ids=lambda r: r["name"])
def test_every_table_has_a_full_schema(res):
    schema = res["schema"]
    assert schema.get("primaryKey"), "every table has a primary key"
    names = [f["name"] for f in schema["fields"]]
    assert len(names) == len(set(names))
    for f in schema["fields"]:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", f["name"]), f["name"]
        assert f.get("type") in {"string", "integer", "number", "boolean"}, f
        assert f.get("description"), f"{f['name']} has no description"
    with (DATA / res["path"]).open(encoding="utf-8", newline="") as fh:
        assert next(csv.reader(fh)) == names, "CSV header matches the schema"


def test_units_are_stated():
    fields = {(r["name"], f["name"]): f["description"] for r in tables()
              for f in r["schema"]["fields"]}
    assert "persons" in fields[("us_troops_by_host", "troops")]
    assert "persons" in fields[("usfk_troops_rebuild", "troops_ad")]
    assert "millions" in fields[("rok_oda", "value_usd_millions")]
    assert "US dollars" in fields[("rok_oda", "value_usd_millions")]
    assert "%" in fields[("rok_oda", "oda_gni_pct")]
    assert "degrees" in fields[("us_sites", "lat")]


def test_resource_info():
    info = data.resource_info("us_troops_by_host")
    assert "Kane" in json.dumps(info["sources"])
    assert "07388942211030885" in json.dumps(info["sources"])
    assert "West Germany" in info["description"]
    assert info["license"] and info["title"]
    with pytest.raises(KeyError):
        data.resource_info("no_such_table")


# ---------------------------------------------------------------------------
# Loading: types, caching, working directories
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXPECTED)
def test_load_every_resource(name):
    obj = data.load(name)
    if name == "korean_peninsula_50m":
        assert obj["type"] == "FeatureCollection"
        assert {f["properties"]["name"] for f in obj["features"]} == {"South Korea",
                                                                      "North Korea"}
    else:
        with (DATA / f"{name}.csv").open(encoding="utf-8", newline="") as fh:
            assert len(obj) == sum(1 for _ in csv.reader(fh)) - 1


def test_dtypes_follow_the_schema():
    t = data.load("us_troops_by_host")
    assert str(t["troops"].dtype) == "int64"          # required integer
    assert str(t["army"].dtype) == "Int64"            # nullable integer
    assert t["army"].isna().any()
    tl = data.load("alliance_timeline")
    assert tl["from_source_text"].dtype == bool
    assert str(tl["end_year"].dtype) == "Int64"
    assert "late 1960s" in set(tl["date"])             # imprecise dates stay strings
    s = data.load("us_sites")
    assert str(s["lat"].dtype) == "float64" and s["lat"].isna().sum() == 1


def test_cache_returns_independent_copies():
    a = data.load("principles")
    a.loc[0, "label"] = "changed"
    assert data.load("principles").loc[0, "label"] != "changed"


@pytest.mark.parametrize("where", ["root", "chapters", "tmp"])
def test_load_from_any_working_directory(where, tmp_path):
    cwd = {"root": "/", "chapters": str(ROOT / "chapters"), "tmp": str(tmp_path)}[where]
    env = {k: v for k, v in os.environ.items() if k != "USROK_DATA"}
    code = ("from usrok import data; t = data.load('us_troops_by_host'); "
            "print(len(t), data.DATA_DIR)")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n, found = out.stdout.split()
    assert Path(found) == DATA.resolve()
    assert int(n) == len(raw_rows(DATA / "us_troops_by_host.csv"))


def test_env_var_overrides_the_search(tmp_path, monkeypatch):
    copy = _copy_data(tmp_path)
    rows = _read(copy / "principles.csv")
    rows[1][1] = "A label only the copy has"
    _write(copy / "principles.csv", rows)
    monkeypatch.setenv("USROK_DATA", str(copy))
    assert data.find_data_dir() == copy.resolve()
    assert data.load("principles").loc[0, "label"] == "A label only the copy has"
    monkeypatch.setenv("USROK_DATA", str(tmp_path))  # parent of data/ is accepted too
    assert data.find_data_dir() == copy.resolve()


# ---------------------------------------------------------------------------
# Corrupted copies must fail with file, row and column in the message
# ---------------------------------------------------------------------------

def _copy_data(tmp_path: Path) -> Path:
    dest = tmp_path / "data"
    dest.mkdir()
    for p in DATA.iterdir():
        if p.is_file() and p.suffix in {".csv", ".json", ".geojson"}:
            shutil.copy2(p, dest / p.name)
    return dest


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def _write(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))


def _find(rows, **match) -> int:
    """Index (0-based, header = 0) of the first row matching column=value pairs.
    Its row number in the CSV (header = row 1) is index + 1."""
    head = rows[0]
    for i, r in enumerate(rows[1:], start=1):
        if all(r[head.index(k)] == v for k, v in match.items()):
            return i
    raise LookupError(match)


@pytest.fixture
def copy(tmp_path):
    return _copy_data(tmp_path)


def _error(name, where, via_env, monkeypatch) -> data.DataValidationError:
    if via_env:
        monkeypatch.setenv("USROK_DATA", str(where))
        call = lambda: data.load(name)  # noqa: E731
    else:
        call = lambda: data.load(name, data_dir=where)  # noqa: E731
    with pytest.raises(data.DataValidationError) as info:
        call()
    return info.value


@pytest.mark.parametrize("via_env", [True, False], ids=["USROK_DATA", "data_dir"])
def test_wrong_type(copy, via_env, monkeypatch):
    path = copy / "us_troops_by_host.csv"
    rows = _read(path)
    i = _find(rows, host="South Korea", year="1990")
    rows[i][rows[0].index("troops")] = "abc"
    _write(path, rows)
    err = _error("us_troops_by_host", copy, via_env, monkeypatch)
    msg = str(err)
    assert msg.startswith("data/us_troops_by_host.csv, ")
    assert f"row {i + 1}," in msg and "column 'troops'" in msg
    assert "'abc'" in msg and "integer" in msg
    assert (err.row, err.column) == (i + 1, "troops")


def test_missing_column(copy, monkeypatch):
    path = copy / "rok_oda.csv"
    rows = _read(path)
    k = rows[0].index("value_usd_millions")
    _write(path, [r[:k] + r[k + 1:] for r in rows])
    msg = str(_error("rok_oda", copy, True, monkeypatch))
    assert "data/rok_oda.csv" in msg and "row 1" in msg
    assert "column 'value_usd_millions'" in msg and "missing" in msg


def test_duplicate_primary_key(copy, monkeypatch):
    path = copy / "us_troops_by_host.csv"
    rows = _read(path)
    first = _find(rows, host="Japan", year="1975")
    rows.append(list(rows[first]))
    _write(path, rows)
    err = _error("us_troops_by_host", copy, True, monkeypatch)
    msg = str(err)
    assert "data/us_troops_by_host.csv" in msg
    assert f"row {len(rows)}," in msg                  # the appended row
    assert "'host'" in msg and "'year'" in msg and "duplicate" in msg
    assert f"row {first + 1}" in msg                   # points at the first occurrence


def test_duplicate_single_column_key(copy, monkeypatch):
    path = copy / "alliance_timeline.csv"
    rows = _read(path)
    rows[5][0] = rows[4][0]
    _write(path, rows)
    msg = str(_error("alliance_timeline", copy, True, monkeypatch))
    assert "row 6," in msg and "column 'event_id'" in msg and "duplicate" in msg


@pytest.mark.parametrize("column,value,rule", [
    ("troops", "-1", "minimum"),
    ("year", "2999", "maximum"),
    ("host", "Narnia", "enum"),
])
def test_out_of_range(copy, monkeypatch, column, value, rule):
    path = copy / "us_troops_by_host.csv"
    rows = _read(path)
    i = _find(rows, host="Germany", year="1991")
    rows[i][rows[0].index(column)] = value
    _write(path, rows)
    msg = str(_error("us_troops_by_host", copy, True, monkeypatch))
    assert f"row {i + 1}," in msg and f"column '{column}'" in msg
    assert rule in msg and value in msg


def test_required_value_missing(copy, monkeypatch):
    path = copy / "rok_oda.csv"
    rows = _read(path)
    rows[3][rows[0].index("source_url")] = ""
    _write(path, rows)
    msg = str(_error("rok_oda", copy, True, monkeypatch))
    assert "row 4," in msg and "column 'source_url'" in msg and "required" in msg


def test_empty_file(copy, monkeypatch):
    (copy / "us_sites.csv").write_bytes(b"")
    err = _error("us_sites", copy, True, monkeypatch)
    msg = str(err)
    assert "data/us_sites.csv" in msg and "row 1" in msg and "column '" in msg
    assert "empty" in msg


def test_header_only_file(copy, monkeypatch):
    path = copy / "principles.csv"
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")
    msg = str(_error("principles", copy, True, monkeypatch))
    assert "row 2" in msg and "no data rows" in msg


def test_wrong_encoding(copy, monkeypatch):
    path = copy / "alliance_timeline.csv"
    text = path.read_text(encoding="utf-8")
    path.write_bytes(text.encode("cp1252"))  # as if saved by a spreadsheet on Windows
    rows = list(csv.reader(io.StringIO(text, newline="")))
    row, column = next((i + 1, rows[0][j]) for i, r in enumerate(rows)
                       for j, cell in enumerate(r) if any(ord(ch) > 127 for ch in cell))
    err = _error("alliance_timeline", copy, True, monkeypatch)
    msg = str(err)
    assert "data/alliance_timeline.csv" in msg
    assert f"row {row}," in msg and f"column '{column}'" in msg
    assert "UTF-8" in msg


def test_edit_after_load_is_seen(copy, monkeypatch):
    """The in-memory cache is keyed on the file's mtime: a later edit is validated."""
    monkeypatch.setenv("USROK_DATA", str(copy))
    assert len(data.load("implications")) == 5
    path = copy / "implications.csv"
    rows = _read(path)
    rows[2][rows[0].index("principle_id")] = "9"
    _write(path, rows)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(data.DataValidationError, match=r"row 3, column 'principle_id'"):
        data.load("implications")


# ---------------------------------------------------------------------------
# Loader hardening: finite numbers, no forgeable cache, located errors without
# validation, physical line numbers, no Frictionless
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "nan", "NaN", "1e999"])
def test_numbers_must_be_finite(copy, monkeypatch, value):
    """A number column with only a minimum (value_usd_millions >= 0) refuses inf and nan."""
    path = copy / "rok_oda.csv"
    rows = _read(path)
    i = _find(rows, year="2005", headline="true")
    rows[i][rows[0].index("value_usd_millions")] = value
    _write(path, rows)
    err = _error("rok_oda", copy, True, monkeypatch)
    assert (err.row, err.column) == (i + 1, "value_usd_millions"), str(err)
    assert "finite" in str(err) and value in str(err)


def test_integers_must_be_plain_integers(copy, monkeypatch):
    path = copy / "us_troops_by_host.csv"
    rows = _read(path)
    i = _find(rows, host="Japan", year="1975")
    rows[i][rows[0].index("troops")] = "1_000"  # Python's int() would accept it
    _write(path, rows)
    err = _error("us_troops_by_host", copy, True, monkeypatch)
    assert (err.row, err.column) == (i + 1, "troops") and "integer" in str(err)


def _bad_copy(copy: Path) -> Path:
    path = copy / "us_troops_by_host.csv"
    rows = _read(path)
    rows[5][rows[0].index("troops")] = "-5"
    _write(path, rows)
    return path


def test_no_validation_result_is_kept_on_disk(copy, tmp_path):
    """Nothing the loader writes can vouch for a file: a forged entry of the former cache
    (~/.cache/usrok/validated-v1.json) changes nothing, and loading writes no cache."""
    import hashlib

    path = _bad_copy(copy)
    home = tmp_path / "home"
    cache = home / ".cache" / "usrok"
    cache.mkdir(parents=True)
    schema = json.dumps(next(r for r in descriptor()["resources"]
                             if r["name"] == "us_troops_by_host")["schema"], sort_keys=True)
    from importlib.metadata import version

    forged = hashlib.sha256(path.read_bytes() + schema.encode() + version("frictionless").encode()).hexdigest()
    (cache / "validated-v1.json").write_text(json.dumps([forged]))
    code = ("from usrok import data\n"
            "try:\n    data.load('us_troops_by_host')\nexcept data.DataValidationError as e:\n    print('REFUSED', e)\n")
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "USROK_DATA": str(copy)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "REFUSED" in out.stdout and "row 6" in out.stdout, out.stdout + out.stderr
    assert sorted(p.name for p in cache.iterdir()) == ["validated-v1.json"], "the loader wrote a cache"


def test_frictionless_checks_any_file_but_the_built_one(copy, monkeypatch):
    """The second pass is skipped only for bytes equal to datapackage.json's hash."""
    calls = []
    real = data_validation._frictionless_validate
    monkeypatch.setattr(data_validation, "_frictionless_validate", lambda *a: calls.append(a[2]) or real(*a))
    data.load("principles", data_dir=copy)
    assert calls == []
    path = copy / "principles.csv"
    rows = _read(path)
    rows[1][1] = "A label only the copy has"
    _write(path, rows)
    assert data.load("principles", data_dir=copy).loc[0, "label"] == "A label only the copy has"
    assert calls == ["data/principles.csv"]


def test_without_validation_a_bad_value_is_still_located(copy, monkeypatch):
    path = copy / "us_troops_by_host.csv"
    rows = _read(path)
    i = _find(rows, host="Germany", year="1980")
    rows[i][rows[0].index("troops")] = "lots"
    _write(path, rows)
    with pytest.raises(data.DataValidationError) as info:
        data.load("us_troops_by_host", data_dir=copy, validate=False)
    assert str(info.value).startswith("data/us_troops_by_host.csv, ")
    assert (info.value.row, info.value.column) == (i + 1, "troops") and "'lots'" in str(info.value)
    # validate=False skips the schema's rules, not the types: an out-of-range value loads.
    rows[i][rows[0].index("troops")] = "-1"
    _write(path, rows)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert (data.load("us_troops_by_host", data_dir=copy, validate=False)["troops"] == -1).sum() == 1


def _multiline_copy(copy: Path) -> tuple[Path, int]:
    """alliance_timeline with a two-line note in an early row and a bad year further down.
    Returns the copy's path and the line (as an editor counts) of the bad row."""
    path = copy / "alliance_timeline.csv"
    rows = _read(path)
    rows[3][rows[0].index("note")] = "First line of a note,\nsecond line of it"
    i = 10
    rows[i][rows[0].index("year")] = "19x0"
    _write(path, rows)
    lines = path.read_text(encoding="utf-8").split("\n")
    line = next(n for n, text in enumerate(lines, start=1) if ",19x0," in text)
    assert line == i + 2  # one extra line before it
    return path, line


def test_row_numbers_count_lines_after_a_multi_line_cell(copy, monkeypatch):
    _, line = _multiline_copy(copy)
    err = _error("alliance_timeline", copy, True, monkeypatch)
    assert (err.row, err.column) == (line, "year"), str(err)


def test_frictionless_row_numbers_are_turned_into_lines(copy):
    """The Frictionless pass reports records; the loader turns them into lines too."""
    path, line = _multiline_copy(copy)
    res = next(r for r in descriptor()["resources"] if r["name"] == "alliance_timeline")
    text, records = data_validation._precheck(path.read_bytes(), res["schema"]["fields"], "t.csv")
    with pytest.raises(data.DataValidationError) as info:
        data_validation._frictionless_validate(copy, res, "t.csv", records)
    assert (info.value.row, info.value.column) == (line, "year"), str(info.value)


def test_loader_works_without_frictionless(copy):
    """The in-browser edition has no Frictionless: import and load still work, the own checks
    still refuse a bad value, and a notice says the second pass was skipped."""
    _bad_copy(copy)
    code = ("import sys, warnings\n"
            "sys.modules['frictionless'] = None  # as if not installed\n"
            "from usrok import data\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    ok = data.load('principles')\n"
            "    try:\n        data.load('us_troops_by_host')\n"
            "    except data.DataValidationError as e:\n        print('REFUSED', e)\n"
            "print('ROWS', len(ok))\n"
            "print('NOTICE', [str(w.message) for w in caught])\n")
    # principles.csv is also changed, so that its hash differs and the second pass is due.
    rows = _read(copy / "principles.csv")
    rows[1][1] = "Changed"
    _write(copy / "principles.csv", rows)
    env = {**os.environ, "USROK_DATA": str(copy)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ROWS 5" in out.stdout and "REFUSED" in out.stdout and "row 6" in out.stdout, out.stdout
    assert "Frictionless is not installed" in out.stdout


# ---------------------------------------------------------------------------
# Values against the raw files and the source text
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("year", [1990, 1992, 2004, 2008])
def test_usfk_values_equal_the_raw_source(year):
    raw = raw_rows(RAW / "us_troops_by_host_country.csv")
    expected = next(int(r["troops"]) for r in raw
                    if r["host"] == "South Korea" and int(r["year"]) == year)
    t = data.load("us_troops_by_host")
    got = t.loc[(t["host"] == "South Korea") & (t["year"] == year), "troops"]
    assert got.tolist() == [expected]


def test_troop_series_is_complete():
    raw = raw_rows(RAW / "us_troops_by_host_country.csv")
    t = data.load("us_troops_by_host")
    assert len(t) == len(raw)
    assert {(r["host"], int(r["year"]), int(r["troops"])) for r in raw} == \
        set(zip(t["host"], t["year"], t["troops"]))
    west = t[t["host_detail"] == "West Germany"]["year"]
    assert west.max() == 1990 and t[t["host_detail"] == "Germany (unified)"]["year"].min() == 1991


def test_rebuild_keeps_the_2008_anomaly():
    raw = {int(r["year"]): int(r["troops_ad"])
           for r in raw_rows(RAW / "us_troops_south_korea_rebuild.csv")}
    old = {int(r["year"]): int(r["troops"])
           for r in raw_rows(RAW / "us_troops_by_host_country.csv")
           if r["host"] == "South Korea"}
    rb = data.load("usfk_troops_rebuild").set_index("year")
    assert rb.loc[2008, "troops_ad"] == raw[2008]           # not "fixed"
    assert rb.loc[2008, "troops_older_series"] == old[2008]
    assert rb.loc[2008, "troops_ad"] > 1.8 * rb.loc[2007, "troops_ad"]
    assert rb.index[rb["suspect"]].tolist() == [2008]
    assert dict(rb["troops_ad"]) == raw


def test_timeline_keeps_every_raw_row():
    raw = raw_rows(RAW / "alliance_timeline.csv")
    tl = data.load("alliance_timeline")
    ours = tl[tl["event_id"].str.startswith("tl-")]  # not the source text's or the evidence pack's
    assert len(ours) == len(raw)
    assert sorted(zip(ours["date"], ours["event"])) == sorted((r["date"], r["event"])
                                                              for r in raw)
    both = ours[ours["event"].str.contains("Mutual Defense Treaty")]
    assert sorted(both["end_date"]) == ["1954-11-17", "1954-11-18"]  # one-day disagreement


def test_timeline_source_text_events_and_spi_disagreement():
    tl = data.load("alliance_timeline")
    st = tl[tl["from_source_text"]]
    assert len(st) >= 25 and st["evidence"].notna().all()
    spi_text = st[st["event"].str.contains("Security Policy Initiative")]
    assert spi_text["end_year"].tolist() == [2008]
    later_spi = tl[(~tl["from_source_text"]) & tl["event"].str.contains("SPI") &
                   (tl["year"] > 2008)]
    assert len(later_spi) >= 1, "the May 2009 SPI round is kept beside the text's 2004-2008"
    assert "2009" in spi_text["course_note"].iloc[0]
    # every linked id exists
    ids = set(tl["event_id"])
    for refs in tl["related_event_ids"].dropna():
        assert set(refs.split(";")) <= ids


@needs_text
@pytest.mark.parametrize("name", ["alliance_timeline", "easi_stages", "gpr_realignment",
                                  "alliance_areas", "principles", "implications"])
def test_evidence_phrases_are_verbatim_and_short(name):
    text = SOURCE_TEXT.read_text(encoding="utf-8")
    df = data.load(name)
    phrases = df["evidence"].dropna()
    assert len(phrases) > 0
    for p in phrases:
        assert p in text, p
        assert len(p.split()) <= 20, f"quotation too long: {p}"


@needs_text
def test_easi_stage_one_matches_the_text():
    text = SOURCE_TEXT.read_text(encoding="utf-8")
    easi = data.load("easi_stages").set_index("stage")
    m = re.search(r"a ([\d,]+)-person US troop reduction", text)
    assert easi.loc[1, "planned_troop_cut"] == int(m.group(1).replace(",", ""))
    m = re.search(r"carried out over three years from (\d{4}) to (\d{4})", text)
    assert (easi.loc[1, "actual_start_year"], easi.loc[1, "actual_end_year"]) == \
        (int(m.group(1)), int(m.group(2)))
    assert easi.loc[3, ["planned_start_year", "planned_end_year",
                        "planned_troop_cut"]].isna().all(), "stage 3 is not sourced"
    assert easi.loc[1, "status"] == "carried out" and easi.loc[3, "status"] != "carried out"


def test_easi_stage_two_from_the_timeline():
    raw = raw_rows(RAW / "alliance_timeline.csv")
    row = next(r for r in raw if r["date"] == "1992-10-08")
    easi = data.load("easi_stages").set_index("stage")
    assert f"{easi.loc[2, 'planned_troop_cut']:,}" in row["event"]
    assert f"{easi.loc[2, 'planned_start_year']}-{easi.loc[2, 'planned_end_year']}" \
        in row["event"]


@needs_text
def test_gpr_numbers():
    text = SOURCE_TEXT.read_text(encoding="utf-8")
    g = data.load("gpr_realignment").set_index("measure_id")
    total = int(re.search(r"one-third reduction amounting to ([\d,]+) troops",
                          text).group(1).replace(",", ""))
    text_rows = g[g["from_source_text"] & (g["troops_meaning"] == "reduction")]
    assert text_rows["troops_involved"].tolist() == [total]
    sched = g[g["row_type"] == "schedule (data)"]
    assert sched["troops_involved"].sum() == total
    assert sched["planned_by_year"].max() == 2008


def test_oda_headline_rule():
    raw = raw_rows(RAW / "rok_oda.csv")
    oda = data.load("rok_oda")
    assert len(oda) == len(raw), "every row is kept"
    head = oda[oda["headline"]]
    assert head["year"].is_unique
    assert head["year"].tolist() == list(range(head["year"].min(), head["year"].max() + 1))
    assert head["source_url"].str.contains("aftershocks_data").all()
    assert (head.loc[head["year"] <= 2017, "basis"] == "net disbursements").all()
    assert (head.loc[head["year"] >= 2018, "basis"] == "grant equivalent").all()
    # the headline value is the source's own number for that row
    for _, r in head.iterrows():
        src = raw[r["source_row"] - 2]
        assert int(src["year"]) == r["year"]
        assert float(src["net_oda_usd_millions"]) == r["value_usd_millions"]
    assert (oda["year"] == 2007).sum() >= 3, "the 2007 disagreement stays visible"


def test_oda_triple_has_no_base_year():
    raw = raw_rows(RAW / "rok_oda_targets.csv")
    t = data.load("rok_oda_targets")
    assert len(t) == len(raw)
    triple = t[t["kind"] == "triple"]
    assert len(triple) == 1 and triple["base_year"].isna().all()
    assert "base year" in data.resource_info("rok_oda_targets")["description"].lower()


def test_deployments_one_source_per_row_blanks_kept():
    raw = raw_rows(RAW / "rok_overseas_deployments.csv")
    d = data.load("rok_deployments")
    assert len(d) == len(raw)
    blanks = sum(1 for r in raw if r["peak_personnel"] == "")
    assert d["peak_personnel"].isna().sum() == blanks


def test_exercises_and_kind_rule():
    raw = raw_rows(RAW / "us_rok_military_exercises.csv")
    ex = data.load("us_rok_exercises")
    assert len(ex) == len(raw) == 140
    nontrad = ex["peacekeeping"] | ex["humanitarian"]
    assert (ex.loc[nontrad, "kind"] == "non-traditional").all()
    assert (ex.loc[~nontrad, "kind"] == "traditional").all()
    by_id = {r["MMEID"]: r for r in raw}
    for _, r in ex.iterrows():
        assert by_id[r["mme_id"]]["Peacekeeping"] == ("1" if r["peacekeeping"] else "0")
        assert int(by_id[r["mme_id"]]["s.year"]) == r["start_year"]


def test_sites_cleaning():
    raw = raw_rows(RAW / "us_bases_south_korea.csv")
    s = data.load("us_sites")
    assert len(s) == len(raw)
    assert not s["name"].str.contains("\t").any()
    mapped = s[s["on_map"]]
    assert not mapped.duplicated(["lat", "lon"]).any()
    assert mapped["lat"].notna().all()
    assert "Yongpyong" in set(s.loc[s["lat"].isna(), "name"])
    # misspellings stay in `name`, are corrected in `name_clean`
    assert s["name"].str.contains("Humprehys").any()
    assert not s["name_clean"].str.contains("Humprehys|Garrisoin|Teagu").any()
    seoul_lat = mapped.loc[mapped["region"] == "Seoul", "lat"]
    north = mapped.loc[mapped["region"] == "north of Seoul", "lat"]
    south = mapped.loc[mapped["region"] == "south of Seoul", "lat"]
    assert len(north) and len(south) and len(seoul_lat)
    assert north.min() > seoul_lat.max() >= south.max()


def test_areas_principles_implications():
    areas = data.load("alliance_areas").sort_values("order")
    assert areas["chapter"].tolist() == list(range(2, 11))
    assert areas["authors"].str.contains("McDevitt").iloc[0]
    assert areas["authors"].str.contains("Reed").iloc[-1]
    p = data.load("principles")
    imp = data.load("implications")
    assert sorted(p["principle_id"]) == [1, 2, 3, 4, 5]
    assert sorted(imp["principle_id"]) == [1, 2, 3, 4, 5]      # one-to-one
    assert "our reading" in data.resource_info("implications")["description"].lower()


# ---------------------------------------------------------------------------
# The build is reproducible; the data-sources page covers every table
# ---------------------------------------------------------------------------

def test_build_reproduces_committed_files(tmp_path):
    out = tmp_path / "rebuilt"
    run = subprocess.run([sys.executable, str(DATA / "build_tables.py"), "--out", str(out),
                          "--no-validate"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    files = ["datapackage.json"] + [r["path"] for r in descriptor()["resources"]]
    differ = [f for f in files if not filecmp.cmp(out / f, DATA / f, shallow=False)]
    assert not differ, f"re-run of build_tables.py differs from the committed {differ}"


def _repository_files() -> list[str]:
    """What a clone holds: the committed files plus new ones not ignored (the working tree's
    versions, so uncommitted edits are what is tested)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    return [f for f in listed.split("\0") if f and (ROOT / f).is_file()]


@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
def test_data_check_passes_in_a_clone_with_nothing_beside_it(tmp_path):
    """`python data/build_tables.py --check` needs nothing outside the repository."""
    clone = tmp_path / "alone" / "repo"
    for f in _repository_files():
        if f.startswith(("data/", "src/")):
            (clone / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, clone / f)
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("USROK_")}
    run = subprocess.run([sys.executable, "data/build_tables.py", "--check"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "up to date" in run.stdout
    # ... and the check bites: a changed raw value makes the committed tables out of date.
    raw = clone / "data" / "raw" / "rok_oda.csv"
    raw.write_bytes(raw.read_bytes().replace(b"212.07", b"212.08", 1))
    run = subprocess.run([sys.executable, "data/build_tables.py", "--check"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "out of date: " in run.stderr and "rok_oda.csv" in run.stderr


def test_every_raw_file_is_documented_and_every_source_path_exists():
    readme = (RAW / "README.md").read_text(encoding="utf-8")
    raw_files = sorted(str(p.relative_to(RAW)) for p in RAW.rglob("*")
                       if p.is_file() and p != RAW / "README.md")
    undocumented = [f for f in raw_files if f"`{f}`" not in readme]
    assert raw_files and not undocumented, f"data/raw/README.md does not describe {undocumented}"
    used = set()
    for r in descriptor()["resources"]:
        for s in r["sources"]:
            if s["path"].startswith("raw/"):  # relative to datapackage.json, like resource paths
                assert (DATA / s["path"]).is_file(), f"{r['name']}: source {s['path']} is missing"
                used.add(s["path"].removeprefix("raw/"))
            else:
                assert re.match(r"https?://", s["path"]) or s["path"] in (
                    r["path"], "shared/source-text/000_57fe028d7c869dbd.txt"), s["path"]
    inputs = {f for f in raw_files if f.endswith((".csv", ".geojson"))}  # evidence/ included
    assert used == inputs, (f"raw files no table cites: {inputs - used}; "
                            f"cited but not raw data files: {used - inputs}")


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared data folder at {SHARED} (only on "
                    "maintainers' machines)")
def test_raw_copies_equal_the_shared_extracts():
    """The copies in data/raw/ have not drifted from the vetted extracts (where those exist)."""
    # The top-level README is ours (it adds each file's licence); everything else is a copy.
    shared = {str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.is_file()} - {"README.md"}
    ours = {str(p.relative_to(RAW)) for p in RAW.rglob("*") if p.is_file()} - {"README.md"}
    assert ours == shared, f"only in data/raw: {ours - shared}; not copied: {shared - ours}"
    differ = [f for f in sorted(ours) if not filecmp.cmp(SHARED / f, RAW / f, shallow=False)]
    assert not differ, f"data/raw/ differs from {SHARED}: {differ}"


def test_catalogue_page_covers_every_resource():
    md = data_catalogue.catalogue_markdown(link_prefix="../data/")
    for r in descriptor()["resources"]:
        assert "{download}`" in md and f"<../data/{r['path']}>`" in md, r["name"]
        assert f'load("{r["name"]}")' in md
    assert re.search(r"(?<!\\)\$", md) is None, "dollar signs are escaped (no accidental math)"
    # the book enables linkify: only the sources' own URLs may become links
    from markdown_it import MarkdownIt

    md_parser = MarkdownIt("commonmark", {"linkify": True}).enable(["linkify", "table"])
    hrefs = {t.attrGet("href") for tok in md_parser.parse(md) if tok.children
             for t in tok.children if t.type == "link_open"}
    urls = {s["path"] for r in descriptor()["resources"] for s in r["sources"]}
    assert hrefs and hrefs <= urls, hrefs - urls
    page = (ROOT / "chapters" / "data_sources.md").read_text(encoding="utf-8")
    assert "(data-sources)=" in page and "# Data sources" in page
    assert "```{data-catalogue}" in page  # usrok.book's directive renders catalogue_markdown there
