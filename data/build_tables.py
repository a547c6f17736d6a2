#!/usr/bin/env python3
"""Build the course's data package (``data/*.csv`` + ``data/datapackage.json``).

Inputs (all in the repository)
  * the raw extracts in ``data/raw/`` (each file's source, licence and what was
    filtered: ``data/raw/README.md``);
  * the hand-curated facts from the source text in ``data/curated/*.csv``
    (one citation per row: a short verbatim ``evidence`` phrase, checked
    against the source text when it is available -- ``--source-text PATH`` or
    ``USROK_SOURCE_TEXT``; default ``../shared/source-text/000_57fe028d7c869dbd.txt``;
    the copyrighted text is not part of the repository, and the check is skipped
    without it: it checks the curated files, it adds nothing to the output).

Outputs (all UTF-8, LF line endings, deterministic): one CSV per table and
``datapackage.json`` with a Frictionless Table Schema per table, and a copy of
``korean_peninsula_50m.geojson``.  The committed files in ``data/`` are this
script's output; ``--check`` rebuilds into a temporary folder and reports any
difference with the committed files (exit status 1).

Every cleaning or derivation rule is written out below next to the code that
applies it, and repeated in the resource ``description`` in datapackage.json.
No number is typed here: values come from the input files; the only literals
are the rules (e.g. "headline = ONE rows, net disbursements to 2017, grant
equivalent from 2018"), which are documented.

Usage::

    python data/build_tables.py            # rebuild data/
    python data/build_tables.py --check    # verify data/ is up to date
"""
from __future__ import annotations

import argparse
import csv
import filecmp
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from collections import Counter, OrderedDict
from pathlib import Path

HERE = Path(__file__).resolve().parent          # data/
REPO = HERE.parent                              # repository root
CURATED = HERE / "curated"
RAW = HERE / "raw"
DEFAULT_SOURCE_TEXT = REPO.parent / "shared" / "source-text" / "000_57fe028d7c869dbd.txt"
EVIDENCE_FILE = "evidence/evidence.csv"  # the evidence pack, inside data/raw/
SOURCE_LAST_YEAR = 2012  # the source text's last year: later events are "beyond the source"
TIMELINE_COLUMNS = ("event_id", "date", "end_date", "year", "end_year", "date_precision", "event",
                    "category", "from_source_text", "beyond_source", "source_title", "source_url",
                    "evidence", "related_event_ids", "note", "course_note")

# ---------------------------------------------------------------------------
# Citations used in several places
# ---------------------------------------------------------------------------
BOOK = ("Scott Snyder (ed.), The US–South Korea Alliance: Meeting New Security "
        "Challenges (Lynne Rienner / Council on Foreign Relations, 2012), introduction")
BOOK_SOURCE = {
    "title": "Snyder (ed.) 2012, introduction ('Expanding the US–South Korea Alliance')",
    # The text file carries no web address; the path names the course copy of the text.
    "path": "shared/source-text/000_57fe028d7c869dbd.txt",
    "citation": BOOK + ". Facts paraphrased in our own words; 'evidence' columns hold short "
                "verbatim phrases for checking.",
}
BOOK_LICENSE = {
    "name": "other-at",
    "title": ("Our own-words paraphrase of facts in a copyrighted book (© 2012 Lynne Rienner "
              "Publishers); the 'evidence' phrases are short attributed quotations. Cite the book."),
}
KANE = {
    "title": "Tim Kane, 'Global U.S. Troop Deployment, 1950–2005', Heritage Foundation (2006)",
    "path": "https://www.heritage.org/defense/report/global-us-troop-deployment-1950-2005",
    "citation": "Kane, Tim. Global U.S. Troop Deployment, 1950–2005. Heritage Foundation "
                "(compiled from Defense Manpower Data Center reports).",
}
ALLEN = {
    "title": "Allen, Flynn & Martinez Machain, US global military deployments, 1950–2020, "
             "Conflict Management and Peace Science (doi:10.1177/07388942211030885)",
    "path": "https://doi.org/10.1177/07388942211030885",
    "citation": "Allen, Michael A., Michael E. Flynn and Carla Martinez Machain. 2022. US global "
                "military deployments, 1950–2020. Conflict Management and Peace Science 39(3): "
                "351–370, doi:10.1177/07388942211030885.",
}
TROOPDATA = {
    "title": "troopdata R package (Michael E. Flynn), GitHub meflynn/troopdata",
    "path": "https://github.com/meflynn/troopdata",
    "citation": "Flynn, Michael E. troopdata: Tools for Analyzing Cross-National Military "
                "Deployment and Basing Data (R package).",
}
TROOPDATA_LICENSE = {
    "name": "GPL-3.0",
    "title": "troopdata R package, from which the raw extract comes: GPL (>= 3) "
             "(package DESCRIPTION file)",
    "path": "https://github.com/meflynn/troopdata",
}
DMDC_LICENSE = {
    "name": "other-pd",
    "title": "Underlying Defense Manpower Data Center counts are US government works; "
             "cite Kane and Allen et al. when charting them",
}
COMPILED_LICENSE = {
    "name": "other-at",
    "title": "Course compilation of facts, each row citing its own source (source_title, "
             "source_url); cite the row's source. Quoted phrases remain their authors'.",
}


def raw_source(filename: str) -> dict:
    """The raw extract a table is built from; the path is relative to datapackage.json."""
    return {
        "title": "Course raw extract",
        "path": f"raw/{filename}",
        "citation": "Raw extract in the repository's data/raw/ (source, licence and filtering: "
                    "data/raw/README.md; gaps and disagreements: data/raw/COMPILATION-NOTES.md).",
    }


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def read_csv(path: Path) -> list[dict]:
    """Read a CSV strictly: UTF-8, every row as long as the header."""
    text = path.read_bytes().decode("utf-8")  # raises on non-UTF-8 input
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    out = []
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise ValueError(f"{path}: row {i} has {len(r)} cells, header has {len(header)}")
        out.append(dict(zip(header, r)))
    return out


def F(name, type_, description, required=False, **constraints) -> dict:
    field = {"name": name, "type": type_, "description": description}
    if type_ == "boolean":
        field["trueValues"] = ["true"]
        field["falseValues"] = ["false"]
    c = {}
    if required:
        c["required"] = True
    c.update(constraints)
    if c:
        field["constraints"] = c
    return field


def to_int(s: str):
    """'20155.0' -> 20155 ; '' -> None. Refuses non-integral values."""
    s = s.strip()
    if s == "":
        return None
    v = float(s)
    if v != int(v):
        raise ValueError(f"not an integer: {s!r}")
    return int(v)


def fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def number_variants(n: int) -> set[str]:
    return {str(n), f"{n:,}"}


YEAR_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
DECADE_RE = re.compile(r"^(early |mid-|late )?(\d{3})0s$")
# Rule for dates known only as part of a decade: early = years 0-3, mid = 4-6,
# late = 7-9, whole decade = 0-9.  `year` is the first year of that span and
# `end_year` its last.
DECADE_PARTS = {"early ": (0, 3), "mid-": (4, 6), "late ": (7, 9), None: (0, 9)}


def parse_when(date: str):
    """Return (year, last_year_of_span_or_None, precision) for a date string."""
    m = YEAR_RE.match(date)
    if m:
        precision = "day" if m.group(3) else "month" if m.group(2) else "year"
        return int(m.group(1)), None, precision
    m = DECADE_RE.match(date)
    if m:
        part = m.group(1)
        lo, hi = DECADE_PARTS[part]
        base = int(m.group(2)) * 10
        return base + lo, base + hi, ("decade" if part is None else "decade part")
    raise ValueError(f"unrecognised date {date!r}")


# ---------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------
class Builder:
    def __init__(self, raw: Path, source_text: Path | None, out: Path):
        self.raw_dir = raw
        self.out = out
        self.source_text = None
        if source_text and source_text.exists():
            self.source_text = source_text.read_text(encoding="utf-8")
        self.resources: list[dict] = []
        self.tables: dict[str, list[dict]] = {}

    # -- evidence checks ---------------------------------------------------
    def check_evidence(self, table: str, rows: list[dict]):
        if self.source_text is None:
            return
        for r in rows:
            e = r.get("evidence", "")
            if e and e not in self.source_text:
                raise ValueError(f"{table}: evidence phrase not in source text: {e!r}")

    def add(self, name: str, rows: list[dict], resource: dict):
        fields = [f["name"] for f in resource["schema"]["fields"]]
        for r in rows:
            if list(r.keys()) != fields:
                raise ValueError(f"{name}: row keys {list(r)} != schema {fields}")
        resource = OrderedDict([("name", name), ("path", f"{name}.csv"),
                                ("profile", "tabular-data-resource"),
                                ("format", "csv"), ("mediatype", "text/csv"),
                                ("encoding", "utf-8")] + list(resource.items()))
        resource["schema"].setdefault("missingValues", [""])
        self.resources.append(resource)
        self.tables[name] = rows

    # -- raw files ---------------------------------------------------------
    def raw(self, filename: str) -> list[dict]:
        return read_csv(self.raw_dir / filename)

    # ======================================================================
    def build_troops(self):
        src = self.raw("us_troops_by_host_country.csv")
        detail = {"260": "West Germany", "255": "Germany (unified)",
                  "740": "Japan", "732": "South Korea"}
        rows = []
        for r in src:
            rows.append(OrderedDict([
                ("host", r["host"]),
                ("host_detail", detail[r["ccode"]]),
                ("ccode", int(r["ccode"])),
                ("year", int(r["year"])),
                ("troops", int(r["troops"])),
                ("army", to_int(r["army"])),
                ("navy", to_int(r["navy"])),
                ("air_force", to_int(r["air_force"])),
                ("marine_corps", to_int(r["marine_corps"])),
            ]))
        rows.sort(key=lambda r: (r["host"], r["year"]))
        years = [r["year"] for r in rows]
        first_branch = min(r["year"] for r in rows if r["army"] is not None)
        assert all(r["army"] is None for r in rows if r["year"] < first_branch)
        self.troops_rows = rows
        hosts = sorted({r["host"] for r in rows})
        branch_desc = ("Active-duty {} personnel in the host country (persons). Empty before "
                       f"{first_branch}: the series gives no service breakdown for earlier years. "
                       "Converted from the source's decimal formatting (e.g. '20155.0') to integers.")
        self.add("us_troops_by_host", rows, {
            "title": "US military personnel in South Korea, Japan and Germany, "
                     f"{min(years)}–{max(years)}",
            "description": (
                "Total US military personnel stationed in each host country per year "
                "(Defense Manpower Data Center counts compiled by Kane and extended by Allen, "
                "Flynn & Martinez Machain), taken unchanged from the course extract of "
                "troopdata's data-raw/troopdata.csv. This is the default series for charts. "
                "Caveats: 'Germany' is West Germany (ccode 260) up to 1990 and unified Germany "
                "(ccode 255) from 1991 -- see host_detail; a change at 1990/91 may partly reflect the "
                "change of territory. The service-branch columns (army, navy, air_force, marine_corps) are "
                f"kept but are empty before {first_branch}; they were stored as decimals in the "
                "source and are written as integers here. For South Korea the newer 'rebuild' series is in "
                "usfk_troops_rebuild and differs in some years."),
            "coverage": f"{min(years)}–{max(years)}; hosts: {', '.join(hosts)}; "
                        f"{len(rows)} rows (one per host and year)",
            "sources": [KANE, ALLEN, TROOPDATA, raw_source("us_troops_by_host_country.csv")],
            "licenses": [DMDC_LICENSE, TROOPDATA_LICENSE],
            "schema": {
                "fields": [
                    F("host", "string", "Host country as named in the source. 'Germany' means West "
                      "Germany up to 1990 and unified Germany from 1991.", True, enum=hosts),
                    F("host_detail", "string", "Host state as coded by ccode (derived): 'West "
                      "Germany' for ccode 260, 'Germany (unified)' for 255.", True,
                      enum=sorted(set(detail.values()))),
                    F("ccode", "integer", "Country code as in the source (260 West Germany, "
                      "255 unified Germany, 740 Japan, 732 South Korea).", True,
                      enum=[int(k) for k in detail]),
                    F("year", "integer", "Calendar year of the count.", True,
                      minimum=min(years), maximum=max(years)),
                    F("troops", "integer", "US military personnel in the host country "
                      "(persons, all services).", True, minimum=0),
                    F("army", "integer", branch_desc.format("Army"), minimum=0),
                    F("navy", "integer", branch_desc.format("Navy"), minimum=0),
                    F("air_force", "integer", branch_desc.format("Air Force"), minimum=0),
                    F("marine_corps", "integer", branch_desc.format("Marine Corps"), minimum=0),
                ],
                "primaryKey": ["host", "year"],
            },
        })

    # ======================================================================
    def build_rebuild(self):
        src = self.raw("us_troops_south_korea_rebuild.csv")
        older = {r["year"]: r["troops"] for r in self.troops_rows if r["host"] == "South Korea"}
        # Hand flag from data/raw/README.md: the 2008 value looks like two reports summed.
        SUSPECT = {2008: ("Suspect: about double the neighbouring years and the older series; "
                          "looks like two reports summed (raw data README). Kept as published "
                          "for the data-quality lesson; use us_troops_by_host for charts.")}
        branch_cols = ["army_ad", "navy_ad", "air_force_ad", "marine_corps_ad", "space_force_ad"]
        rows = []
        for r in src:
            y = int(r["year"])
            vals = {k: int(r[k]) for k in r if k != "year"}
            missing_branches = vals["troops_ad"] > 0 and all(vals[b] == 0 for b in branch_cols)
            notes = []
            if y in SUSPECT:
                notes.append(SUSPECT[y])
            if missing_branches:
                notes.append("Branch columns are all 0 while the total is not: read them as "
                             "missing, not zero.")
            rows.append(OrderedDict(
                [("year", y)] + [(k, vals[k]) for k in vals] +
                [("troops_older_series", older.get(y)),
                 ("suspect", y in SUSPECT),
                 ("branches_missing", missing_branches),
                 ("quality_note", " ".join(notes))]))
        years = [r["year"] for r in rows]
        first_civ = min(r["year"] for r in rows if r["total_civilian"] > 0)
        d = "Active-duty {} personnel in South Korea (persons)."
        self.add("usfk_troops_rebuild", rows, {
            "title": f"US forces in South Korea, 'rebuild' series by service, "
                     f"{min(years)}–{max(years)}",
            "description": (
                "The newer 'rebuild' series for South Korea from troopdata "
                "(data-raw/troopdata-rebuild-country-year.csv): active-duty personnel by "
                "service, selected reserve and civilians. Values are unchanged from the course "
                "extract. KNOWN ANOMALY KEPT ON PURPOSE: the 2008 total (see the row flagged "
                "suspect=true) is about double its neighbours and the older series "
                "(troops_older_series); it looks like two reports summed. It is kept as "
                "published, not 'fixed', so that it can be taught as a data-quality check; the "
                "older series (us_troops_by_host) is the default for charts. Other caveats: "
                "where the total is positive but every branch column is 0 (branches_missing) "
                "the breakdown is missing rather than zero; reserve and civilian columns are 0 "
                f"before {first_civ} because they were not reported. troops_older_series is "
                "copied from us_troops_by_host (South Korea) for comparison and is empty where "
                "that series has no value."),
            "coverage": f"{min(years)}–{max(years)}; South Korea only; {len(rows)} rows",
            "sources": [KANE, ALLEN, TROOPDATA, raw_source("us_troops_south_korea_rebuild.csv")],
            "licenses": [DMDC_LICENSE, TROOPDATA_LICENSE],
            "schema": {
                "fields": [
                    F("year", "integer", "Calendar year.", True,
                      minimum=min(years), maximum=max(years)),
                    F("troops_ad", "integer", "Active-duty US military personnel in South Korea, "
                      "all services (persons).", True, minimum=0),
                    F("army_ad", "integer", d.format("Army"), True, minimum=0),
                    F("navy_ad", "integer", d.format("Navy"), True, minimum=0),
                    F("air_force_ad", "integer", d.format("Air Force"), True, minimum=0),
                    F("marine_corps_ad", "integer", d.format("Marine Corps"), True, minimum=0),
                    F("space_force_ad", "integer", d.format("Space Force"), True, minimum=0),
                    F("total_selected_reserve", "integer", "Selected reserve personnel "
                      f"(persons); 0 before {first_civ} = not reported.", True, minimum=0),
                    F("total_civilian", "integer", "Civilian personnel (persons); 0 before "
                      f"{first_civ} = not reported.", True, minimum=0),
                    F("troops_older_series", "integer", "Total from the older series "
                      "(us_troops_by_host, South Korea) for the same year (persons); empty if "
                      "that series has no value.", minimum=0),
                    F("suspect", "boolean", "true where the value is known to be doubtful "
                      "(the 2008 anomaly).", True),
                    F("branches_missing", "boolean", "Derived: true where troops_ad > 0 but "
                      "every active-duty branch column is 0.", True),
                    F("quality_note", "string", "Explanation of the flags (empty if none)."),
                ],
                "primaryKey": ["year"],
            },
        })

    # ======================================================================
    def build_timeline(self):
        src = self.raw("alliance_timeline.csv")
        cur = read_csv(CURATED / "source_text_events.csv")
        self.check_evidence("source_text_events", cur)
        # event ids for the data rows: "tl-" + date, with "-1", "-2", ... when several rows
        # share a date (numbered in file order).
        counts = Counter(r["date"] for r in src)
        seen = Counter()
        rows = []
        for r in src:
            seen[r["date"]] += 1
            eid = "tl-" + r["date"] + (f"-{seen[r['date']]}" if counts[r["date"]] > 1 else "")
            y, _, prec = parse_when(r["date"])
            ey = parse_when(r["end_date"])[0] if r["end_date"] else None
            rows.append(OrderedDict([
                ("event_id", eid), ("date", r["date"]), ("end_date", r["end_date"]),
                ("year", y), ("end_year", ey), ("date_precision", prec),
                ("event", r["event"]), ("category", r["category"]),
                ("from_source_text", False),
                ("source_title", r["source_title"]), ("source_url", r["source_url"]),
                ("evidence", ""), ("related_event_ids", ""),
                ("note", r["note"]), ("course_note", ""),
            ]))
        by_id = {r["event_id"]: r for r in rows}
        # Day-level disagreements between US and Korean calendar dates (time zones).
        tz_note = ("US vs Korean calendar date: Korea is ahead of Washington, so the same "
                   "event can carry dates one day apart; both dates are kept.")
        for eid in ("tl-1953-10-01-1", "tl-1953-10-01-2"):
            by_id[eid]["course_note"] = (
                "The two rows disagree by one day on entry into force (1954-11-17 vs "
                "1954-11-18); both kept. " + tz_note)
            by_id[eid]["related_event_ids"] = ";".join(
                x for x in ("tl-1953-10-01-1", "tl-1953-10-01-2", "st-1953-mdt") if x != eid)
        for eid in ("tl-2007-02-23", "tl-2010-06-26"):
            by_id[eid]["course_note"] = ("The note gives the Korean-date report, one day later. "
                                         + tz_note)
        for r in cur:
            y, span_end, prec = parse_when(r["date"])
            ey = parse_when(r["end_date"])[0] if r["end_date"] else span_end
            rows.append(OrderedDict([
                ("event_id", r["event_id"]), ("date", r["date"]), ("end_date", r["end_date"]),
                ("year", y), ("end_year", ey), ("date_precision", prec),
                ("event", r["event"]), ("category", r["category"]),
                ("from_source_text", True),
                ("source_title", f"{BOOK_SOURCE['title']}, section '{r['section']}'"),
                ("source_url", ""),
                ("evidence", r["evidence"]), ("related_event_ids", r["related_event_ids"]),
                ("note", ""), ("course_note", r["course_note"]),
            ]))
        # Events from the evidence pack (corrections of dates and events after the source):
        # our wording in data/curated/evidence_events.csv, source and address copied from the
        # pack's first cited row, whose date must be the row's date.
        evidence = {e["item_id"]: e for e in self.raw(EVIDENCE_FILE)}
        for r in read_csv(CURATED / "evidence_events.csv"):
            ids = r["evidence_ids"].split(";")
            missing = [i for i in ids if i not in evidence]
            if missing:
                raise ValueError(f"{r['event_id']}: unknown evidence rows {missing}")
            first = evidence[ids[0]]
            if first["date"] != r["date"]:
                raise ValueError(f"{r['event_id']}: date {r['date']!r} differs from evidence "
                                 f"row {ids[0]} ({first['date']!r})")
            y, span_end, prec = parse_when(r["date"])
            ey = parse_when(r["end_date"])[0] if r["end_date"] else span_end
            year = f", {first['year']}" if first["year"] else ""
            rows.append(OrderedDict([
                ("event_id", r["event_id"]), ("date", r["date"]), ("end_date", r["end_date"]),
                ("year", y), ("end_year", ey), ("date_precision", prec),
                ("event", r["event"]), ("category", r["category"]),
                ("from_source_text", False),
                ("source_title", f"{first['source_title']} ({first['publisher']}{year})"),
                ("source_url", first["address"]),
                ("evidence", ""), ("related_event_ids", r["related_event_ids"]),
                ("note", "Evidence pack row" + ("s " if len(ids) > 1 else " ") + ", ".join(ids)
                 + ": " + "; ".join(evidence[i]["claim"] for i in ids)),
                ("course_note", r["course_note"]),
            ]))
        # Rule: the source text ends in 2012; an event that begins after it is beyond it.
        for r in rows:
            r["beyond_source"] = r["year"] > SOURCE_LAST_YEAR
        rows = [OrderedDict((k, r[k]) for k in TIMELINE_COLUMNS) for r in rows]
        ids = [r["event_id"] for r in rows]
        dup = [k for k, v in Counter(ids).items() if v > 1]
        if dup:
            raise ValueError(f"duplicate event ids: {dup}")
        idset = set(ids)
        # make the links symmetric: a data row lists the source-text rows that point to it
        back = {}
        for r in rows:
            for ref in filter(None, r["related_event_ids"].split(";")):
                if ref not in idset:
                    raise ValueError(f"{r['event_id']}: unknown related event {ref}")
                back.setdefault(ref, []).append(r["event_id"])
        for r in rows:
            mine = [x for x in r["related_event_ids"].split(";") if x]
            for b in back.get(r["event_id"], []):
                if b not in mine:
                    mine.append(b)
            r["related_event_ids"] = ";".join(mine)
        rows.sort(key=lambda r: (r["year"], r["date"], r["from_source_text"], r["event_id"]))
        self.timeline_by_id = {r["event_id"]: r for r in rows}
        cats = ["treaty", "forces", "politics", "crisis", "summit", "economy", "doctrine"]
        assert {r["category"] for r in rows} <= set(cats), {r["category"] for r in rows}
        n_st = sum(r["from_source_text"] for r in rows)
        n_tl = sum(r["event_id"].startswith("tl-") for r in rows)
        n_ev = len(rows) - n_st - n_tl
        n_beyond = sum(r["beyond_source"] for r in rows)
        years = [r["year"] for r in rows]
        self.add("alliance_timeline", rows, {
            "title": f"Timeline of the US–ROK alliance, {min(years)}–{max(years)}",
            "description": (
                f"Every dated event in the source text ({n_st} rows, from_source_text=true, "
                "paraphrased, with a short verbatim 'evidence' phrase), every row of the "
                f"compiled alliance_timeline.csv ({n_tl} rows, event_id 'tl-...', "
                "unchanged apart from the added columns), and events from the course's evidence "
                f"pack ({n_ev} rows, event_id 'ev-...', worded by us in "
                "data/curated/evidence_events.csv; source_title and source_url are copied from "
                "the first evidence row cited in 'note', whose date the row must carry): dates "
                "that correct or complete the text (Chun's coup began on 12 Dec 1979; Lee "
                "Myung-bak was elected on 19 Dec 2007, not in January 2008 as the text says; "
                "the Nixon cut was negotiated in 1970; Carter's plan concerned ground combat "
                f"forces) and {n_beyond} events after {SOURCE_LAST_YEAR}, beyond the source "
                "(beyond_source=true: OPCON made conditions-based, THAAD, Camp Humphreys, the "
                "cost-sharing agreements, the Washington Declaration, Camp David). The kinds of "
                "rows overlap on "
                "purpose; related_event_ids links rows about the same event. Disagreements are "
                "kept, never averaged: the Mutual Defense Treaty's entry into force is 17 vs 18 "
                "Nov 1954 in two sources (both rows kept); the OPCON agreement (23 vs 24 Feb "
                "2007) and the Toronto delay (26 vs 27 Jun 2010) differ by a day between US and "
                "Korean reports (the data row carries the US date, its note the Korean one); the "
                "text dates the Security Policy Initiative 2004–2008 while the data show a 22nd "
                "SPI round in May 2009; the text dates FOTA 2002–2004 while the data put the first "
                "FOTA meeting in April 2003; Nov 1991 troop figures differ between newspapers (see "
                "the row's note). Not found in any source: FOTA's end date, SPI's start date, the "
                "entry into force of the 2001 SOFA revision, the signing date of Strategic "
                "Alliance 2015 and of the Feb 2011 KORUS letters (see notes). Some data rows rest "
                "on mirrors or reposts, flagged in source_title. Date rule: 'date' is as precise "
                "as the source allows (YYYY, YYYY-MM, YYYY-MM-DD, or a decade phrase such as "
                "'late 1960s'); 'year' is the first year and 'end_year' the last year of the "
                "event (for a decade phrase: early = years 0–3, mid = 4–6, late = 7–9 of the "
                "decade, whole decade = 0–9; end_year empty for a single point in time)."),
            "coverage": f"{min(years)}–{max(years)}; {len(rows)} events ({n_st} from the source "
                        f"text, {n_tl} from the compiled timeline, {n_ev} from the evidence pack; "
                        f"{n_beyond} after {SOURCE_LAST_YEAR})",
            "sources": [BOOK_SOURCE, raw_source("alliance_timeline.csv"),
                        raw_source(EVIDENCE_FILE),
                        {"title": "Per-row sources: see the source_title and source_url columns",
                         "path": "alliance_timeline.csv"}],
            "licenses": [BOOK_LICENSE, COMPILED_LICENSE],
            "schema": {
                "fields": [
                    F("event_id", "string", "Stable identifier: 'st-...' for events from the "
                      "source text (hand-assigned), 'tl-<date>' for rows of the compiled "
                      "timeline (suffix -1, -2 where rows share a date, in file order), "
                      "'ev-<date>-...' for events from the evidence pack (hand-assigned).", True,
                      pattern=r"^(st|tl|ev)-[a-z0-9-]+$"),
                    F("date", "string", "Start date as precise as known: YYYY, YYYY-MM, "
                      "YYYY-MM-DD, or a decade phrase ('late 1960s', 'mid-1990s', '1970s'). "
                      "Kept as text because many dates are imprecise.", True,
                      pattern=r"^(\d{4}(-\d{2}(-\d{2})?)?|((early|late) |mid-)?\d{3}0s)$"),
                    F("end_date", "string", "End date (same formats as date) where the event "
                      "spans time or has a later milestone (e.g. entry into force).",
                      pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$"),
                    F("year", "integer", "First year of the event (for plotting; see the "
                      "decade rule in the description).", True, minimum=1900, maximum=2100),
                    F("end_year", "integer", "Last year of the event or span; empty for a "
                      "single point in time.", minimum=1900, maximum=2100),
                    F("date_precision", "string", "Precision of 'date'.", True,
                      enum=["day", "month", "year", "decade part", "decade"]),
                    F("event", "string", "What happened, in our own words (source-text rows) or "
                      "as compiled (data rows).", True),
                    F("category", "string", "Kind of event.", True, enum=cats),
                    F("from_source_text", "boolean", "true if the event is dated in the source "
                      "text (Snyder 2012 introduction).", True),
                    F("beyond_source", "boolean", "true if the event begins after "
                      f"{SOURCE_LAST_YEAR}, the last year the source text covers: the course "
                      "teaches it in sections headed '(beyond the source)' and draws it in its "
                      "own style on the timeline.", True),
                    F("source_title", "string", "Where the row comes from.", True),
                    F("source_url", "string", "Web address of the source (empty for the book)."),
                    F("evidence", "string", "Source-text rows: a short verbatim phrase from the "
                      "text that dates the event (for checking; attributed quotation)."),
                    F("related_event_ids", "string", "Other rows about the same event, "
                      "';'-separated event_ids."),
                    F("note", "string", "Note carried over from the compiled timeline; for "
                      "'ev-' rows, the evidence pack rows the event rests on and their claims."),
                    F("course_note", "string", "Our note: disagreements between sources and "
                      "how they are handled."),
                ],
                "primaryKey": ["event_id"],
            },
        })

    # ======================================================================
    def _traceable(self, table, row, values, texts):
        """Every number we copy into a curated table must appear in its cited text."""
        blob = " ".join(texts)
        for v in values:
            if v is None or v == "":
                continue
            if isinstance(v, int):
                if not any(x in blob for x in number_variants(v)):
                    raise ValueError(f"{table} {row}: value {v} not found in its sources")
            elif str(v) not in blob:
                raise ValueError(f"{table} {row}: value {v!r} not found in its sources")

    def _tl_texts(self, ids: str):
        out = []
        for eid in filter(None, ids.split(";")):
            r = self.timeline_by_id[eid]
            out += [r["date"], r["end_date"], r["event"], r["note"]]
        return out

    def build_easi(self):
        cur = read_csv(CURATED / "easi_stages.csv")
        self.check_evidence("easi_stages", cur)
        rows = []
        for r in cur:
            ints = {k: to_int(r[k]) for k in ("planned_start_year", "planned_end_year",
                                               "actual_start_year", "actual_end_year",
                                               "planned_troop_cut")}
            texts = [r["evidence"]] + self._tl_texts(r["timeline_event_ids"])
            self._traceable("easi_stages", r["stage"], list(ints.values()), texts)
            srcs = [f"{BOOK_SOURCE['title']}, section 'US-ROK Alliance Adaptation Following the "
                    "End of the Cold War'"]
            urls = []
            for eid in filter(None, r["timeline_event_ids"].split(";")):
                t = self.timeline_by_id[eid]
                srcs.append(f"{t['source_title']} ({eid})")
                urls.append(t["source_url"])
            rows.append(OrderedDict([
                ("stage", int(r["stage"])), ("stage_label", r["stage_label"]),
                ("planned_start_year", ints["planned_start_year"]),
                ("planned_end_year", ints["planned_end_year"]),
                ("actual_start_year", ints["actual_start_year"]),
                ("actual_end_year", ints["actual_end_year"]),
                ("planned_measures", r["planned_measures"]),
                ("planned_troop_cut", ints["planned_troop_cut"]),
                ("planned_troop_cut_source", r["planned_troop_cut_source"]),
                ("status", r["status"]), ("outcome", r["outcome"]),
                ("evidence", r["evidence"]),
                ("timeline_event_ids", r["timeline_event_ids"]),
                ("source_title", "; ".join(srcs)), ("source_url", " ".join(urls)),
                ("note", r["note"]),
            ]))
        statuses = ["carried out", "postponed then frozen", "frozen (never started)"]
        self.add("easi_stages", rows, {
            "title": "The three stages of the East Asian Strategic Initiative (EASI), 1990",
            "description": (
                "The three stages of the 1990 EASI plan for US forces in Korea, as the source "
                "text lists them (measures paraphrased), with what happened. Stage 1 was carried "
                "out in 1990–1992 (about 7,000 fewer US personnel, per the text). The later "
                "stages were frozen by Defense Secretary Cheney over the North Korean nuclear "
                "crisis of 1991–1992: the text gives only '1992'; the compiled timeline dates "
                "the announced postponement of the second phase 1991-11-21 and the hold 1992-10-08 "
                "(see timeline_event_ids). Stage 2's planned years (1993–1995) and its ~6,500 cut "
                "come from the 1992-10-08 timeline row (a second newspaper says ~6,600); the text "
                "gives no numbers for it. NOT SOURCED, LEFT EMPTY: stage 1's planned years as "
                "distinct from the actual ones, and all of stage 3's years and troop numbers (the "
                "compilation notes: EASI Phase III is not sourced). planned_measures lists the "
                "measures separated by ';'."),
            "coverage": f"{len(rows)} stages (1990 plan)",
            "sources": [BOOK_SOURCE, raw_source("alliance_timeline.csv")],
            "licenses": [BOOK_LICENSE, COMPILED_LICENSE],
            "schema": {
                "fields": [
                    F("stage", "integer", "Stage number.", True, minimum=1, maximum=3),
                    F("stage_label", "string", "Label for charts.", True),
                    F("planned_start_year", "integer", "Planned first year (empty = not in any "
                      "source).", minimum=1990, maximum=2000),
                    F("planned_end_year", "integer", "Planned last year (empty = not in any "
                      "source).", minimum=1990, maximum=2000),
                    F("actual_start_year", "integer", "Year the stage actually began (empty = "
                      "never carried out).", minimum=1990, maximum=2000),
                    F("actual_end_year", "integer", "Year the stage was completed (empty = "
                      "never carried out).", minimum=1990, maximum=2000),
                    F("planned_measures", "string", "What the stage planned, in our words, "
                      "';'-separated, following the source text's list.", True),
                    F("planned_troop_cut", "integer", "Planned reduction of US personnel in "
                      "Korea (persons); empty = not given.", minimum=0),
                    F("planned_troop_cut_source", "string", "Which source gives "
                      "planned_troop_cut."),
                    F("status", "string", "What became of the stage.", True, enum=statuses),
                    F("outcome", "string", "What happened, with dates.", True),
                    F("evidence", "string", "Short verbatim phrase from the source text "
                      "(attributed quotation).", True),
                    F("timeline_event_ids", "string", "Related alliance_timeline rows "
                      "(';'-separated)."),
                    F("source_title", "string", "Sources of the row ('; '-separated).", True),
                    F("source_url", "string", "Web addresses of the timeline sources "
                      "(space-separated)."),
                    F("note", "string", "Caveats and what could not be sourced."),
                ],
                "primaryKey": ["stage"],
            },
        })

    # ======================================================================
    def build_gpr(self):
        cur = read_csv(CURATED / "gpr_realignment.csv")
        self.check_evidence("gpr_realignment", cur)
        rows = []
        for r in cur:
            from_text = r["row_type"].endswith("(source text)")
            troops = to_int(r["troops_involved"])
            texts = [r["evidence"]] + self._tl_texts(r["timeline_event_id"])
            if troops is not None:
                self._traceable("gpr_realignment", r["measure_id"], [troops], texts)
            if r["planned_by"]:
                self._traceable("gpr_realignment", r["measure_id"], [r["planned_by"]],
                                texts + [r["measure"]])
            if r["timeline_event_id"]:
                t = self.timeline_by_id[r["timeline_event_id"]]
                if r["announced"] and r["announced"] != t["date"]:
                    raise ValueError(f"{r['measure_id']}: announced != timeline date")
                title, url = t["source_title"], t["source_url"]
            else:
                title = (f"{BOOK_SOURCE['title']}, section 'US-ROK Alliance Adaptation "
                         "Following the End of the Cold War'")
                url = ""
            if from_text and not r["evidence"]:
                raise ValueError(f"{r['measure_id']}: source-text row without evidence")
            rows.append(OrderedDict([
                ("measure_id", r["measure_id"]), ("measure_group", r["measure_group"]),
                ("row_type", r["row_type"]), ("measure", r["measure"]),
                ("troops_involved", troops), ("troops_meaning", r["troops_meaning"]),
                ("planned_by", r["planned_by"]),
                ("planned_by_year", int(r["planned_by"][:4]) if r["planned_by"] else None),
                ("announced", r["announced"]), ("from_source_text", from_text),
                ("evidence", r["evidence"]), ("timeline_event_id", r["timeline_event_id"]),
                ("source_title", title), ("source_url", url), ("note", r["note"]),
            ]))
        groups = ["troop reduction", "relocation", "redeployment", "mission transfer",
                  "command", "strategic flexibility"]
        types = sorted({r["row_type"] for r in rows})
        self.add("gpr_realignment", rows, {
            "title": "Global Posture Review: realignment of US forces in Korea",
            "description": (
                "The realignment measures of the Rumsfeld-era Global Posture Review as the source "
                "text lists them (row_type '... (source text)', paraphrased, with a verbatim "
                "evidence phrase): a planned one-third cut of 12,500 troops; moving the DMZ camps "
                "to a central camp north of Seoul; sending one of two combat brigades to Iraq; "
                "the ROK military taking over missions at the DMZ; dissolving the Combined Forces "
                "Command and returning wartime OPCON; and 'strategic flexibility'. Rows of type "
                "'(data)' add dated plans, schedules and revisions from the compiled timeline "
                "(timeline_event_id points to the alliance_timeline row, whose source is copied "
                "here). troops_involved is a number of persons whose meaning is given by "
                "troops_meaning (reduction, brigade strength or troop level); the three "
                "'schedule' rows are the stretched 2004-10-06 plan (5,000 / 5,000 / 2,500 by "
                "2004 / end-2006 / end-2008) and add up to 12,500 -- compare them with the "
                "troop series 2004–2008. The 2008 revision (USFK kept at 28,500, a further 3,500 "
                "cut scrapped) does not reconcile with the 2,500 last tranche; both are kept. The "
                "text gives no completion date for the 12,500 cut."),
            "coverage": f"{len(rows)} rows: measures 2004–2008, OPCON dates to 2015",
            "sources": [BOOK_SOURCE, raw_source("alliance_timeline.csv")],
            "licenses": [BOOK_LICENSE, COMPILED_LICENSE],
            "schema": {
                "fields": [
                    F("measure_id", "string", "Stable identifier.", True, pattern=r"^gpr-\d{2}$"),
                    F("measure_group", "string", "Which realignment measure the row belongs "
                      "to.", True, enum=groups),
                    F("row_type", "string", "measure/agreement as the source text lists it, or "
                      "a dated plan/schedule/revision/agreement from the data.", True,
                      enum=types),
                    F("measure", "string", "What was planned or agreed, in our words.", True),
                    F("troops_involved", "integer", "Number of US troops (persons) the row "
                      "involves; see troops_meaning. Empty = no number in the sources.",
                      minimum=0),
                    F("troops_meaning", "string", "What troops_involved counts.",
                      enum=["reduction", "brigade strength", "troop level"]),
                    F("planned_by", "string", "Deadline as given (YYYY = by the end of that "
                      "year; YYYY-MM-DD = on that date).",
                      pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$"),
                    F("planned_by_year", "integer", "Year of planned_by (derived).",
                      minimum=2000, maximum=2030),
                    F("announced", "string", "Date the plan or agreement was announced "
                      "(data rows).", pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$"),
                    F("from_source_text", "boolean", "true for measures listed in the source "
                      "text.", True),
                    F("evidence", "string", "Short verbatim phrase from the source text "
                      "(source-text rows)."),
                    F("timeline_event_id", "string", "alliance_timeline row the data comes "
                      "from (data rows)."),
                    F("source_title", "string", "Source of the row.", True),
                    F("source_url", "string", "Web address of the source (empty for the "
                      "book)."),
                    F("note", "string", "Caveats."),
                ],
                "primaryKey": ["measure_id"],
                "foreignKeys": [{"fields": ["timeline_event_id"],
                                 "reference": {"resource": "alliance_timeline",
                                               "fields": ["event_id"]}}],
            },
        })

    # ======================================================================
    # ODA: mapping of the source's free-text basis/status to short categories.
    BASIS_RULES = [  # first matching prefix wins (case-insensitive)
        ("net disbursement", "net disbursements"),
        ("net oda", "net disbursements"),
        ("net expenditures", "net disbursements"),
        ("grant equivalent", "grant equivalent"),
        ("total oda, grant equivalent", "grant equivalent"),
        ("unknown", "unknown"),
    ]
    STATUS_RULES = [
        ("final", "final"), ("preliminary", "preliminary"),
        ("as published", "as published (later revised)"), ("unknown", "unknown"),
    ]
    ONE_REPO = "ONEcampaign/aftershocks_data"

    @staticmethod
    def _map(value, rules, what):
        v = value.lower()
        for prefix, out in rules:
            if v.startswith(prefix):
                return out
        raise ValueError(f"no {what} rule for {value!r}")

    def build_oda(self):
        src = self.raw("rok_oda.csv")
        rows = []
        for i, r in enumerate(src, start=2):
            basis = self._map(r["basis"], self.BASIS_RULES, "basis")
            status = self._map(r["status"], self.STATUS_RULES, "status")
            if r["status"].startswith("as published"):
                status = "as published"
            y = int(r["year"])
            one = self.ONE_REPO in r["source_url"]
            # Headline rule: the OECD DAC series as processed by ONE (aftershocks_data):
            # net disbursements up to 2017, grant equivalent from 2018.
            headline = one and ((y <= 2017 and basis == "net disbursements") or
                                (y >= 2018 and basis == "grant equivalent"))
            rows.append(OrderedDict([
                ("source_row", i), ("year", y),
                ("value_usd_millions", r["net_oda_usd_millions"]),
                ("oda_gni_pct", r["oda_gni_pct"]),
                ("basis", basis), ("basis_detail", r["basis"]),
                ("status", status), ("status_detail", r["status"]),
                ("headline", headline),
                ("source_title", r["source_title"]), ("source_url", r["source_url"]),
                ("note", r["note"]),
            ]))
        head = [r["year"] for r in rows if r["headline"]]
        if len(head) != len(set(head)):
            raise ValueError("rok_oda: more than one headline row in a year")
        if head != list(range(min(head), max(head) + 1)):
            raise ValueError("rok_oda: headline series has gaps")
        years = [r["year"] for r in rows]
        self.add("rok_oda", rows, {
            "title": f"South Korean official development assistance (ODA), "
                     f"{min(years)}–{max(years)}",
            "description": (
                "South Korea's ODA by year in current US dollars (millions), with the ODA/GNI "
                "ratio, keeping every row of the compiled source so that disagreements stay "
                "visible (several rows per year). HEADLINE RULE (headline=true, exactly one row "
                f"per year {min(head)}–{max(head)}): the OECD DAC series as processed by the ONE "
                "Campaign (aftershocks_data) -- net disbursements up to 2017, grant equivalent "
                "from 2018, when grant equivalent became the OECD's headline measure. Chart "
                "only the headline rows as one line and label the change of basis; for "
                "2018–2024 net disbursements are listed beside it for comparison (higher, e.g. "
                "in 2024). Other rows are preliminary announcements (press, ministries) or "
                "older published figures, kept for the preliminary-vs-final lesson. basis and "
                "status are short categories mapped from the source's free text (kept in "
                "basis_detail / status_detail) by prefix: 'net disbursement', 'net ODA', 'net "
                "expenditures' -> net disbursements; 'grant equivalent', 'total ODA, grant "
                "equivalent' -> grant equivalent; 'unknown ...' -> unknown. Caveats: the 2024 "
                "headline equals the April-2025 preliminary (status unknown); the 2025 row is a "
                "preliminary figure from ONE's oda-dashboard and is not headline; current USD "
                "moves with the won-dollar rate, so compare years with oda_gni_pct; Korea does "
                "not count aid to North Korea as ODA. NOT SOURCED: the 1990s apart from a "
                "rounded 1991 figure of unknown basis; no ODA/GNI for the 1990s."),
            "coverage": f"{min(years)}–{max(years)} ({len(rows)} rows; headline "
                        f"{min(head)}–{max(head)})",
            "sources": [
                {"title": "ONE Campaign, aftershocks_data (OECD DAC1 via oda_data), commit 3fd8990",
                 "path": "https://github.com/ONEcampaign/aftershocks_data/tree/"
                         "3fd899024f88ed92f08c5823303520b635de91f2/raw_data/oda",
                 "citation": "OECD DAC1 data as processed by the ONE Campaign "
                             "(ONEcampaign/aftershocks_data)."},
                raw_source("rok_oda.csv"),
                {"title": "Per-row sources: see source_title and source_url",
                 "path": "rok_oda.csv"},
            ],
            "licenses": [COMPILED_LICENSE],
            "schema": {
                "fields": [
                    F("source_row", "integer", "Row number in the raw extract rok_oda.csv "
                      "(header = 1); stable key for citing a row.", True, minimum=2),
                    F("year", "integer", "Year the aid was given.", True,
                      minimum=1990, maximum=2030),
                    F("value_usd_millions", "number", "ODA in millions of current US dollars "
                      "(as the source gives it; see basis).", True, minimum=0),
                    F("oda_gni_pct", "number", "ODA as a percentage of gross national income "
                      "(%, e.g. 0.14 = 0.14% of GNI); empty if the source gives none.",
                      minimum=0, maximum=1),
                    F("basis", "string", "Measurement basis (mapped from basis_detail).", True,
                      enum=["net disbursements", "grant equivalent", "unknown"]),
                    F("basis_detail", "string", "Basis as worded in the source.", True),
                    F("status", "string", "Whether the figure is final (mapped from "
                      "status_detail).", True,
                      enum=["final", "preliminary", "as published", "unknown"]),
                    F("status_detail", "string", "Status as worded in the source.", True),
                    F("headline", "boolean", "true for the one headline value per year (rule in "
                      "the description).", True),
                    F("source_title", "string", "Source of the row.", True),
                    F("source_url", "string", "Web address of the source.", True),
                    F("note", "string", "Note from the compiled source (disagreements)."),
                ],
                "primaryKey": ["source_row"],
            },
        })

    def build_oda_targets(self):
        src = self.raw("rok_oda_targets.csv")
        rows = []
        for i, r in enumerate(src, start=2):
            d = r["target_description"]
            # Kind rule, first match wins:
            if d.startswith("TRIPLE"):
                kind = "triple"
            elif d.startswith("DOUBLE"):
                kind = "double"
            elif "fold since" in d:
                kind = "past growth claim"
            elif r["target_oda_gni_pct"] == "" and "US$" in d:
                kind = "absolute"
            elif "annual path" in d or "year-path" in d:
                kind = "annual path"
            else:
                kind = "ratio target"
            m = re.search(r"\d{4}", r["year_set"])
            b = re.search(r"Base year (\d{4})", r["note"])
            rows.append(OrderedDict([
                ("source_row", i), ("year_set", r["year_set"]),
                ("year_set_num", int(m.group()) if m else None),
                ("target_year", to_int(r["target_year"])),
                ("target_oda_gni_pct", r["target_oda_gni_pct"]),
                ("kind", kind),
                ("base_year", int(b.group(1)) if b else None),
                ("description", d),
                ("source_title", r["source_title"]), ("source_url", r["source_url"]),
                ("note", r["note"]),
            ]))
        kinds = ["ratio target", "annual path", "triple", "double", "absolute",
                 "past growth claim"]
        assert {r["kind"] for r in rows} <= set(kinds)
        self.add("rok_oda_targets", rows, {
            "title": "South Korean government ODA targets and pledges",
            "description": (
                "Government ODA targets and pledges, one row per source statement (a target can "
                "appear in several rows). Ratio targets: 0.118% of GNI by 2010 and 0.25% by "
                "2015 (2008 DAC special review; the year they were set is not sourced), the 2010 "
                "plan's yearly path for 2011–2014, 0.20% by 2020 and 0.30% by 2030 (adopted 10 "
                "Nov 2015). Korea missed the 2015 target. The November 2009 statement that "
                "Korea had 'decided to triple' ODA through 2015 (kind=triple) gives NO BASE "
                "YEAR in any source: base_year is empty, and it must not be read as 'triple "
                "the 2009 level' without saying so. A February 2009 'three-fold since 2000' is "
                "a claim about past growth (kind='past growth claim'), and 2011–2012 statements "
                "speak of doubling to about $3bn by 2015 (kind=double). One 2010 item says 0.25% "
                "of GDP, probably meaning GNI (see note). kind is derived from the description "
                "by this rule, first match wins: starts with 'TRIPLE' -> triple; 'DOUBLE' -> "
                "double; contains 'fold since' -> past growth claim; no ratio and mentions 'US$' "
                "-> absolute; mentions 'annual path'/'year-path' -> annual path; otherwise "
                "ratio target. year_set_num is the first four-digit year in year_set; base_year "
                "is taken from a 'Base year YYYY' remark in the note."),
            "coverage": f"{len(rows)} statements; target years "
                        f"{min(r['target_year'] for r in rows if r['target_year'])}–"
                        f"{max(r['target_year'] for r in rows if r['target_year'])}",
            "sources": [raw_source("rok_oda_targets.csv"),
                        {"title": "Per-row sources: see source_title and source_url",
                         "path": "rok_oda_targets.csv"}],
            "licenses": [COMPILED_LICENSE],
            "schema": {
                "fields": [
                    F("source_row", "integer", "Row number in the raw extract (header = 1).",
                      True, minimum=2),
                    F("year_set", "string", "When the target was set or stated, as worded in "
                      "the source ('not stated' where unknown).", True),
                    F("year_set_num", "integer", "First four-digit year in year_set (derived); "
                      "empty if none.", minimum=2000, maximum=2030),
                    F("target_year", "integer", "Year by which the target is to be met; empty "
                      "if none stated.", minimum=2000, maximum=2050),
                    F("target_oda_gni_pct", "number", "Target ODA/GNI ratio in percent (0.25 = "
                      "0.25% of GNI); empty for triple/double/absolute pledges.",
                      minimum=0, maximum=1),
                    F("kind", "string", "Kind of target (rule in the description).", True,
                      enum=kinds),
                    F("base_year", "integer", "Base year of a multiple (triple/double) where "
                      "a source states one; empty = not stated.", minimum=1990, maximum=2030),
                    F("description", "string", "The target as summarised in the compiled "
                      "source (short quotations attributed there).", True),
                    F("source_title", "string", "Source of the row.", True),
                    F("source_url", "string", "Web address of the source.", True),
                    F("note", "string", "Note from the compiled source."),
                ],
                "primaryKey": ["source_row"],
            },
        })

    # ======================================================================
    MISSION_GROUPS = [  # (prefix of 'mission', group label), first match wins
        ("Vietnam War", "Vietnam War"), ("Sangnoksu", "Sangnoksu Unit"),
        ("Seoheui", "Seoheui and Jema units"), ("Zaytun", "Zaytun Division"),
        ("Dongui", "Dongui and Dasan units"), ("Ashena", "Ashena Unit"),
        ("Dongmyeong", "Dongmyeong Unit"), ("Cheonghae", "Cheonghae Unit"),
        ("Danbi", "Danbi Unit"), ("Hanbit", "Hanbit Unit"),
    ]

    def build_deployments(self):
        src = self.raw("rok_overseas_deployments.csv")
        rows = []
        for i, r in enumerate(src, start=2):
            group = next(g for p, g in self.MISSION_GROUPS if r["mission"].startswith(p))
            mk = r["mandate"]
            kind = ("UN" if mk.startswith("UN") else "US-led coalition"
                    if mk.startswith("US-led") else "other multinational"
                    if mk.lower().startswith("other") else None)
            if kind is None:
                raise ValueError(f"no mandate rule for {mk!r}")
            rows.append(OrderedDict([
                ("source_row", i), ("mission", r["mission"]), ("mission_group", group),
                ("country", r["country"]),
                ("start_year", to_int(r["start_year"])), ("end_year", to_int(r["end_year"])),
                ("peak_personnel", to_int(r["peak_personnel"])),
                ("mandate", mk), ("mandate_kind", kind),
                ("source_title", r["source_title"]), ("source_url", r["source_url"]),
                ("note", r["note"]),
            ]))
        self.add("rok_deployments", rows, {
            "title": "South Korean military deployments abroad",
            "description": (
                "South Korean deployments abroad (Vietnam, East Timor, Iraq, Afghanistan, "
                "Lebanon, Gulf of Aden, Haiti, South Sudan), ONE SOURCE PER ROW, so a mission "
                "spans several rows where sources differ; blanks mean the source did not give "
                "that field (they are not zeros). mission_group groups rows of the same mission "
                "(by the first words of 'mission'); mandate_kind is mapped from 'mandate' by its "
                "first word (UN / US-led coalition / other multinational; Ashena and Cheonghae "
                "follow the ROK defence ministry's 'other' label). Disagreements kept: Vietnam "
                "peak 50,000 (1968 table) vs 47,872 (authorized increments) vs 'more than "
                "47,800'; Vietnam's end year 1973 comes only from a planned schedule; the "
                "Dongui unit started Feb 2002 (Dong-A) or Sept 2002 (Chosun); Zaytun's 3,600 is "
                "2,800 + 800 in one source and 3,600 at the outset in another; Haiti 240 vs 440 "
                "troops. peak_personnel is the peak or reported strength as the source gives "
                "it: for current missions (Lebanon, Cheonghae, South Sudan) and Afghanistan "
                "'200+' it is strength on a date, not a verified peak (see note). Missions with "
                "no end_year were still under way in the source."),
            "coverage": f"{len(rows)} rows, {len({r['mission_group'] for r in rows})} missions, "
                        f"{min(r['start_year'] for r in rows if r['start_year'])}–present",
            "sources": [raw_source("rok_overseas_deployments.csv"),
                        {"title": "Per-row sources: see source_title and source_url",
                         "path": "rok_deployments.csv"}],
            "licenses": [COMPILED_LICENSE],
            "schema": {
                "fields": [
                    F("source_row", "integer", "Row number in the raw extract (header = 1).",
                      True, minimum=2),
                    F("mission", "string", "Mission or unit as named in the source.", True),
                    F("mission_group", "string", "Mission the row belongs to (derived).", True,
                      enum=sorted({g for _, g in self.MISSION_GROUPS})),
                    F("country", "string", "Where the unit served.", True),
                    F("start_year", "integer", "Year the deployment began (empty = not in this "
                      "source).", minimum=1950, maximum=2030),
                    F("end_year", "integer", "Year it ended (empty = ongoing in the source or "
                      "not given).", minimum=1950, maximum=2030),
                    F("peak_personnel", "integer", "Peak or reported strength (persons) as the "
                      "source gives it; see note for what it measures.", minimum=0),
                    F("mandate", "string", "Mandate as worded in the source.", True),
                    F("mandate_kind", "string", "Mandate category (derived).", True,
                      enum=["UN", "US-led coalition", "other multinational"]),
                    F("source_title", "string", "Source of the row.", True),
                    F("source_url", "string", "Web address of the source.", True),
                    F("note", "string", "Note from the compiled source."),
                ],
                "primaryKey": ["source_row"],
            },
        })

    # ======================================================================
    FLAGS = ["CPX", "Air", "Land", "Sea", "Amphibious", "Cyber", "Warfighting",
             "Peacekeeping", "Humanitarian"]

    @staticmethod
    def _mme_date(s: str, year: int) -> str:
        """'3/1/80' -> '1980-03-01'; '1980-01-xx' -> '1980-01' (unknown day dropped)."""
        m = re.match(r"^(\d{1,2})/(\d{1,2})/(\d{2})$", s)
        if m:
            mo, d, yy = map(int, m.groups())
            full = 1900 + yy if yy >= 50 else 2000 + yy  # checked against s.year/e.year
            return f"{full:04d}-{mo:02d}-{d:02d}"
        m = re.match(r"^(\d{4})-(\d{2})-xx$", s)
        if m:
            return f"{m.group(1)}-{m.group(2)}"
        m = re.match(r"^(\d{4})-(\d{2})-(\d{2})$", s)
        if m:
            return s
        raise ValueError(f"unrecognised MME date {s!r}")

    def build_exercises(self):
        src = self.raw("us_rok_military_exercises.csv")
        rows = []
        for r in src:
            sy, ey = int(r["s.year"]), int(r["e.year"])
            sd, ed = self._mme_date(r["StartDate"], sy), self._mme_date(r["EndDate"], ey)
            if int(sd[:4]) != sy or int(ed[:4]) != ey:
                raise ValueError(f"{r['MMEID']}: parsed date year differs from s.year/e.year")
            flags = {k: r[k] == "1" for k in self.FLAGS}
            assert all(r[k] in ("0", "1") for k in self.FLAGS)
            # Kind rule: non-traditional if the Peacekeeping or Humanitarian flag is set.
            kind = ("non-traditional" if flags["Peacekeeping"] or flags["Humanitarian"]
                    else "traditional")
            rows.append(OrderedDict(
                [("mme_id", r["MMEID"]), ("name", r["Ex_Name"]),
                 ("series", r["Series_Name"]), ("location", r["Location"]),
                 ("lat", r["lat"]), ("lon", r["lon"]),
                 ("start_date", sd), ("end_date", ed),
                 ("start_date_source", r["StartDate"]), ("end_date_source", r["EndDate"]),
                 ("start_year", sy), ("end_year", ey)] +
                [(k.lower(), flags[k]) for k in self.FLAGS] +
                [("kind", kind), ("focus_description", r["FocusDescription"]),
                 ("participants", r["participants"])]))
        rows.sort(key=lambda r: (r["start_date"], r["mme_id"]))
        years = [r["start_year"] for r in rows]
        nk = Counter(r["kind"] for r in rows)
        no_loc = [r["mme_id"] for r in rows if r["lat"] == ""]
        (top_pt, top_n), = Counter((r["lat"], r["lon"]) for r in rows
                                   if r["lat"]).most_common(1)
        no_name = [r["mme_id"] for r in rows if r["name"] == "-9"]
        far = [r["mme_id"] for r in rows
               if r["lon"] and not 120 <= float(r["lon"]) <= 135]
        series = sorted({r["series"] for r in rows if r["series"]})
        flag_desc = "MME flag '{}' (true = the exercise has this element)."
        self.add("us_rok_exercises", rows, {
            "title": f"US–ROK military exercises, {min(years)}–{max(years)}",
            "description": (
                f"The {len(rows)} exercises {min(years)}–{max(years)} in which both the United "
                "States and South Korea took part, from the Multinational Military Exercises "
                "(MME) data, version 7 (D'Orazio and Galambos) as shipped in the troopdata "
                "package (data-raw/mme_v7.csv). Column names are shortened and made snake_case; "
                "the 0/1 flags become booleans. Dates: the source mixes 'm/d/yy' and "
                "'YYYY-MM-xx' (day unknown); start_date/end_date rewrite them as ISO 'YYYY-MM-DD' "
                "or 'YYYY-MM' (two-digit years read as 19yy from 50 up and 20yy below, checked "
                "against s.year/e.year), the originals are "
                "kept in start_date_source/end_date_source. DERIVED kind: 'non-traditional' if "
                "the Peacekeeping or Humanitarian flag is set, otherwise 'traditional' "
                f"({nk['traditional']} traditional, {nk['non-traditional']} non-traditional). "
                "Caveats: series is empty for one-off exercises; lat/lon geocode the Location text, "
                f"not the exercise site: {top_n} rows share the single point {top_pt[0]}, "
                f"{top_pt[1]} (most with Location 'South Korea' or a variant), and "
                f"{len(far)} rows lie outside the 120-135 deg E band around Korea (exercises "
                "held elsewhere, e.g. RIMPAC); participants joins the source's StateA..StateZ columns "
                "and one value contains '-9', the MME code for a missing value; "
                f"{len(no_name)} rows have the name '-9' (no name in MME: label them by series, "
                "date or focus_description); "
                f"{len(no_loc)} row(s) ({', '.join(no_loc)}) have location '-9' and no "
                "coordinates. The Cyber flag is never set in these rows."),
            "coverage": f"{min(years)}–{max(years)}; {len(rows)} exercises; series: "
                        + ", ".join(series),
            "sources": [
                {"title": "Vito D'Orazio and Kevin Galambos, Multinational Military Exercises "
                          "(MME) data, version 7",
                 "path": "https://github.com/meflynn/troopdata",
                 "citation": "D'Orazio, Vito, and Kevin Galambos. Multinational Military "
                             "Exercises data (MME), v7, via the troopdata R package "
                             "(data-raw/mme_v7.csv)."},
                TROOPDATA, raw_source("us_rok_military_exercises.csv")],
            "licenses": [TROOPDATA_LICENSE,
                         {"name": "other-at", "title": "MME data: licence of the original "
                          "dataset not stated in the files read; cite D'Orazio and Galambos"}],
            "schema": {
                "fields": (
                    [F("mme_id", "string", "MME identifier (source MMEID).", True,
                       pattern=r"^mme\d+$"),
                     F("name", "string", "Exercise name (source Ex_Name).", True),
                     F("series", "string", "Exercise series (source Series_Name, e.g. Team "
                       "Spirit, FE = Foal Eagle, UFL = Ulchi Focus Lens); empty for one-offs."),
                     F("location", "string", "Location as worded in the source.", True),
                     F("lat", "number", "Latitude of the geocoded location (degrees north); empty "
                       "if the source has none.", minimum=-90, maximum=90),
                     F("lon", "number", "Longitude of the geocoded location (degrees east); "
                       "empty if the source has none.", minimum=-180, maximum=180),
                     F("start_date", "string", "Start date, ISO 'YYYY-MM-DD' or 'YYYY-MM' "
                       "(day unknown).", True, pattern=r"^\d{4}-\d{2}(-\d{2})?$"),
                     F("end_date", "string", "End date, same format.", True,
                       pattern=r"^\d{4}-\d{2}(-\d{2})?$"),
                     F("start_date_source", "string", "Start date as written in the source.",
                       True),
                     F("end_date_source", "string", "End date as written in the source.", True),
                     F("start_year", "integer", "Year the exercise began (source s.year).",
                       True, minimum=min(years), maximum=max(years)),
                     F("end_year", "integer", "Year it ended (source e.year).", True,
                       minimum=min(years), maximum=max(years) + 1)] +
                    [F(k.lower(), "boolean", flag_desc.format(k), True) for k in self.FLAGS] +
                    [F("kind", "string", "Derived: non-traditional if peacekeeping or "
                       "humanitarian is true, else traditional.", True,
                       enum=["traditional", "non-traditional"]),
                     F("focus_description", "string", "Short description from the source "
                       "(FocusDescription)."),
                     F("participants", "string", "Participating states, '; '-separated "
                       "('-9' = missing in MME).", True)]),
                "primaryKey": ["mme_id"],
            },
        })

    # ======================================================================
    SPELLING = {"Humprehys": "Humphreys", "Garrisoin": "Garrison", "Teagu": "Taegu"}

    def build_sites(self):
        src = self.raw("us_bases_south_korea.csv")
        rows = []
        for i, r in enumerate(src, start=2):
            raw = r["basename"]
            # Cleaning step 1: tabs. "X<TAB>South Korea" -> "X"; any other tab -> space.
            name = raw.replace("\tSouth Korea", "").replace("\t", " ")
            name = re.sub(r"\s+,", ",", re.sub(r"\s+", " ", name)).strip()
            # Cleaning step 2: spelling fixes in a separate column (source spelling kept).
            clean = name
            for bad, good in self.SPELLING.items():
                clean = clean.replace(bad, good)
            lat = float(r["lat"]) if r["lat"] else None
            lon = float(r["lon"]) if r["lon"] else None
            rows.append(OrderedDict([
                ("site_id", i), ("name_source", raw.replace("\t", "\\t")),
                ("name", name), ("name_clean", clean),
                ("lat", r["lat"]), ("lon", r["lon"]),
                ("base", r["base"] == "1"), ("lilypad", r["lilypad"] == "1"),
                ("funded_site", r["fundedsite"] == "1"),
                ("region", None), ("same_coords_as", None), ("on_map", False),
                ("cleaning_note", []), ("_lat", lat), ("_lon", lon), ("_tab", "\t" in raw),
            ]))
        # Cleaning step 3: rows at identical coordinates. Keep one per location for the map:
        # prefer a row whose source name has no tab; among those, the first in file order.
        groups = {}
        for r in rows:
            if r["_lat"] is not None:
                groups.setdefault((r["_lat"], r["_lon"]), []).append(r)
        for g in groups.values():
            keep = sorted(g, key=lambda r: (r["_tab"], r["site_id"]))[0]
            for r in g:
                if r is not keep:
                    r["same_coords_as"] = keep["site_id"]
                    r["cleaning_note"].append(
                        f"same coordinates as site {keep['site_id']} ({keep['name_clean']}); "
                        "left off the map")
        # Cleaning step 4: rows without coordinates are flagged, not dropped.
        for r in rows:
            if r["_lat"] is None:
                r["cleaning_note"].append("no coordinates in the source; left off the map")
            r["on_map"] = r["_lat"] is not None and r["same_coords_as"] is None
        # Region rule: 'Seoul' = rows whose cleaned name mentions Seoul or Yongsan, and rows at
        # exactly their coordinates; 'north of Seoul' = latitude greater than the northernmost
        # Seoul row; 'south of Seoul' = every other row with coordinates.
        seoul = [r for r in rows if re.search(r"\b(Seoul|Yongsan)\b", r["name_clean"])]
        seoul_coords = {(r["_lat"], r["_lon"]) for r in seoul}
        ref = max(r["_lat"] for r in seoul)
        self.seoul_ref_lat = ref
        for r in rows:
            if r["_lat"] is None:
                continue
            if (r["_lat"], r["_lon"]) in seoul_coords:
                r["region"] = "Seoul"
            elif r["_lat"] > ref:
                r["region"] = "north of Seoul"
            else:
                r["region"] = "south of Seoul"
        for r in rows:
            if r["_tab"]:
                r["cleaning_note"].insert(0, "tab character in source name")
            fixes = [b for b in self.SPELLING if b in r["name"]]
            if fixes:
                r["cleaning_note"].insert(0, "spelling fixed in name_clean: " + ", ".join(
                    f"{b} -> {self.SPELLING[b]}" for b in fixes))
            if "Tongsan" in r["name"]:
                r["cleaning_note"].append("'Tongsan' left as in source (place not verified)")
            r["cleaning_note"] = "; ".join(r["cleaning_note"])
            for k in ("_lat", "_lon", "_tab"):
                del r[k]
        # repeated camp names at different coordinates (noted, not merged)
        camp_counts = Counter()
        for r in rows:
            for camp in re.findall(r"Camp [A-Z][a-z]+(?: [A-Z][a-z]+)?", r["name_clean"]):
                camp_counts[camp] += 1
        repeated = sorted(c for c, n in camp_counts.items() if n > 1)
        n_map = sum(r["on_map"] for r in rows)
        by_id = {r["site_id"]: r for r in rows}
        flag_diffs = []
        for r in rows:
            k = by_id.get(r["same_coords_as"])
            if k and (k["base"], k["lilypad"]) != (r["base"], r["lilypad"]):
                flag_diffs.append(f"site {r['site_id']} {r['name']} has base={fmt(r['base'])}, "
                                  f"lilypad={fmt(r['lilypad'])}; kept site {k['site_id']} has "
                                  f"base={fmt(k['base'])}, lilypad={fmt(k['lilypad'])}")
        regions = Counter(r["region"] for r in rows if r["on_map"])
        self.add("us_sites", rows, {
            "title": "US military sites in South Korea (Vine basing data)",
            "description": (
                "US bases and small sites ('lily pads') in South Korea from David Vine's basing "
                "data as updated by Michael Flynn through 2018 (troopdata data-raw/basedata.csv; "
                "South Korea rows, re-encoded from Latin-1 to UTF-8 in the course extract). "
                "CLEANING, reproducible in build_tables.py: (1) tab characters -- 'X<TAB>South "
                "Korea' becomes 'X', any other tab a space (name); name_source keeps the source "
                "text with tabs shown as \\t. (2) misspellings are kept in name and corrected "
                "only in name_clean: " + ", ".join(f"{a} -> {b}" for a, b in self.SPELLING.items())
                + "; 'Tongsan' is left as is. (3) rows sharing exactly the same coordinates "
                "(e.g. 'Osan<TAB>South Korea' and 'Osan AFB') are kept but all except one get "
                "same_coords_as and on_map=false; the kept row is the first whose source name "
                "has no tab. (4) the Yongpyong row has no coordinates: kept, flagged, "
                f"on_map=false. {n_map} of {len(rows)} rows are on the map. REGION RULE (for the "
                "map of the move from Seoul/Yongsan and the DMZ camps southward): 'Seoul' = rows "
                "whose cleaned name mentions Seoul or Yongsan, plus rows at exactly their "
                "coordinates; 'north of Seoul' = latitude above the northernmost Seoul row "
                f"({ref} deg N, from the data); 'south of Seoul' = all other rows with "
                "coordinates (a latitude rule only: it includes sites such as Inchon and Wonju that "
                "lie more to the west or east of Seoul than to the south). On the map: " + ", ".join(f"{k} {v}" for k, v in sorted(regions.items()))
                + ". Caveats: the data geocode sites by town, so several camps share a point and "
                "some camp names recur at different places (" + ", ".join(repeated) + "); "
                "treat names as labels, not verified locations. The flags of a row left off the map "
                "can differ from the kept row's (" + "; ".join(flag_diffs) + "). The data carry "
                "no dates for individual sites, so they cannot show when a site opened or "
                "closed."),
            "coverage": f"{len(rows)} rows ({n_map} mapped locations); data updated through 2018",
            "sources": [
                {"title": "David Vine, US overseas basing data, updated by Michael E. Flynn "
                          "(troopdata data-raw/basedata.csv)",
                 "path": "https://github.com/meflynn/troopdata",
                 "citation": "Vine, David. Lists of US military bases abroad, as updated by "
                             "Michael E. Flynn in the troopdata R package."},
                TROOPDATA, raw_source("us_bases_south_korea.csv")],
            "licenses": [TROOPDATA_LICENSE,
                         {"name": "other-at", "title": "Basing data: licence of the original "
                          "lists not stated in the files read; cite Vine and Flynn"}],
            "schema": {
                "fields": [
                    F("site_id", "integer", "Row number in the raw extract (header = 1).", True,
                      minimum=2),
                    F("name_source", "string", "Site name exactly as in the source, tabs shown "
                      "as \\t.", True),
                    F("name", "string", "Name after the tab clean-up (source spelling).", True),
                    F("name_clean", "string", "name with known misspellings corrected.", True),
                    F("lat", "number", "Latitude (degrees north); empty if missing in source.",
                      minimum=33, maximum=39),
                    F("lon", "number", "Longitude (degrees east); empty if missing in source.",
                      minimum=124, maximum=132),
                    F("base", "boolean", "Source flag base = 1 (a base).", True),
                    F("lilypad", "boolean", "Source flag lilypad = 1 (a small site).", True),
                    F("funded_site", "boolean", "Source flag fundedsite = 1.", True),
                    F("region", "string", "Derived region (rule in the description); empty "
                      "without coordinates.", enum=["north of Seoul", "Seoul", "south of Seoul"]),
                    F("same_coords_as", "integer", "site_id of the row kept for the map at the "
                      "same coordinates; empty if this row is the kept one.", minimum=2),
                    F("on_map", "boolean", "true for one row per location with coordinates.",
                      True),
                    F("cleaning_note", "string", "What the cleaning changed or flagged."),
                ],
                "primaryKey": ["site_id"],
                "foreignKeys": [{"fields": ["same_coords_as"],
                                 "reference": {"resource": "", "fields": ["site_id"]}}],
            },
        })

    # ======================================================================
    def build_geojson(self):
        src = self.raw_dir / "korean_peninsula_50m.geojson"
        data = json.loads(src.read_text(encoding="utf-8"))
        names = [f["properties"]["name"] for f in data["features"]]
        shutil.copyfile(src, self.out / "korean_peninsula_50m.geojson")
        self.resources.append(OrderedDict([
            ("name", "korean_peninsula_50m"), ("path", "korean_peninsula_50m.geojson"),
            ("type", "json"),
            ("format", "geojson"), ("mediatype", "application/geo+json"),
            ("encoding", "utf-8"),
            ("title", "Korean peninsula outline (Natural Earth 1:50m)"),
            ("description",
             "Country polygons for " + " and ".join(names) + " from Natural Earth Admin 0 "
             "country boundaries, 1:50m, version 4.1.0, as redistributed in the world-atlas npm "
             "package 2.0.2 (countries-50m.json), converted from TopoJSON to GeoJSON; copied "
             "unchanged. Small enough to ship for offline maps (Altair mark_geoshape with a "
             "Mercator projection, with us_sites on top). Generalised at 1:50m scale: fine for "
             "a map, not for measurement. load() returns it as a dict."),
            ("coverage", "Korean peninsula: " + ", ".join(names)),
            ("sources", [
                {"title": "Natural Earth, Admin 0 countries 1:50m v4.1.0, via world-atlas 2.0.2",
                 "path": "https://github.com/topojson/world-atlas",
                 "citation": "Made with Natural Earth (public domain), via the world-atlas npm "
                             "package 2.0.2."},
                raw_source("korean_peninsula_50m.geojson")]),
            ("licenses", [{"name": "other-pd", "title": "Natural Earth: public domain"}]),
        ]))

    def build_areas(self):
        cur = read_csv(CURATED / "alliance_areas.csv")
        self.check_evidence("alliance_areas", cur)
        rows = []
        for r in cur:
            if r["chapter"] not in r["evidence"]:
                raise ValueError(f"alliance_areas: chapter {r['chapter']} not in evidence")
            rows.append(OrderedDict([
                ("chapter", int(r["chapter"])), ("order", int(r["order"])),
                ("area_id", r["area_id"]), ("area", r["area"]), ("authors", r["authors"]),
                ("text_group", r["text_group"]), ("description", r["description"]),
                ("evidence", r["evidence"]),
            ]))
        assert [r["order"] for r in rows] == [r["chapter"] - 1 for r in rows]
        self.add("alliance_areas", rows, {
            "title": "Nine areas of US–ROK cooperation (the book's chapters 2–10)",
            "description": (
                "The nine areas of cooperation covered by chapters 2–10 of the book, from the "
                "source text's 'Outline of the Book'. The text says the chapters start with the "
                "issues closest to traditional security cooperation; 'order' (1 = most "
                "traditional) follows the chapter order -- that ordering of the middle chapters "
                "is our reading of the text, which ranks only loosely. The text presents chapters "
                "8–10 separately as cooperation on global security issues (text_group). "
                "Descriptions are our own words; evidence is a short verbatim phrase naming the "
                "chapter and author. area_id is a stable short key for charts (e.g. the "
                "areas x principles heatmap)."),
            "coverage": "9 areas, chapters 2–10",
            "sources": [BOOK_SOURCE],
            "licenses": [BOOK_LICENSE],
            "schema": {
                "fields": [
                    F("chapter", "integer", "Chapter number in the book.", True,
                      minimum=2, maximum=10),
                    F("order", "integer", "Position from traditional (1) to non-traditional "
                      "(9), following the text's chapter order.", True, minimum=1, maximum=9),
                    F("area_id", "string", "Short stable key.", True, pattern=r"^[a-z_]+$"),
                    F("area", "string", "Area of cooperation (our label).", True),
                    F("authors", "string", "Chapter author(s), ';'-separated.", True),
                    F("text_group", "string", "How the text groups the chapter.", True,
                      enum=sorted({r["text_group"] for r in rows})),
                    F("description", "string", "What the chapter examines, in our words.",
                      True),
                    F("evidence", "string", "Short verbatim phrase from the text.", True),
                ],
                "primaryKey": ["chapter"],
            },
        })

    def build_principles(self):
        cur = read_csv(CURATED / "principles.csv")
        self.check_evidence("principles", cur)
        rows = [OrderedDict([("principle_id", int(r["principle_id"])), ("label", r["label"]),
                             ("summary", r["summary"]), ("evidence", r["evidence"])])
                for r in cur]
        self.add("principles", rows, {
            "title": "Five principles of a comprehensive US–ROK alliance",
            "description": (
                "The five characteristics ('principles') of a comprehensive alliance listed, "
                "numbered 1–5, in the source text's section on a mutually beneficial rationale "
                "for a comprehensive alliance. Labels and summaries "
                "are our own words; evidence is a short verbatim phrase. The text gives no "
                "scores or rankings of the principles."),
            "coverage": "5 principles",
            "sources": [BOOK_SOURCE],
            "licenses": [BOOK_LICENSE],
            "schema": {
                "fields": [
                    F("principle_id", "integer", "Number as in the text.", True,
                      minimum=1, maximum=5),
                    F("label", "string", "Short label (our words).", True),
                    F("summary", "string", "One-sentence summary (our words).", True),
                    F("evidence", "string", "Short verbatim phrase from the text.", True),
                ],
                "primaryKey": ["principle_id"],
            },
        })

    def build_implications(self):
        cur = read_csv(CURATED / "implications.csv")
        self.check_evidence("implications", cur)
        rows = [OrderedDict([("implication_id", int(r["implication_id"])), ("label", r["label"]),
                             ("summary", r["summary"]),
                             ("principle_id", int(r["principle_id"])),
                             ("evidence", r["evidence"])]) for r in cur]
        self.add("implications", rows, {
            "title": "Five implications for revamping the alliance",
            "description": (
                "The five implications the source text draws from the five principles (a "
                "bulleted list following them). implication_id is the bullet's position. "
                "principle_id is the principle each implication serves: the text presents them "
                "in the same order and each bullet restates its principle, so we map them one to "
                "one in order. THE MAPPING IS OUR READING; the text does not label the bullets. "
                "Labels and summaries are our own words; evidence is a short verbatim phrase."),
            "coverage": "5 implications",
            "sources": [BOOK_SOURCE],
            "licenses": [BOOK_LICENSE],
            "schema": {
                "fields": [
                    F("implication_id", "integer", "Position of the bullet in the text.", True,
                      minimum=1, maximum=5),
                    F("label", "string", "Short label (our words).", True),
                    F("summary", "string", "One-sentence summary (our words).", True),
                    F("principle_id", "integer", "The principle this implication serves (our "
                      "reading).", True, minimum=1, maximum=5),
                    F("evidence", "string", "Short verbatim phrase from the text.", True),
                ],
                "primaryKey": ["implication_id"],
                "foreignKeys": [{"fields": ["principle_id"],
                                 "reference": {"resource": "principles",
                                               "fields": ["principle_id"]}}],
            },
        })

    # ======================================================================
    # Evidence for the nine areas of cooperation (the briefs of chapter 8.1).
    # Topic prefix -> area_id of alliance_areas (A0 is framing: no area).
    EVIDENCE_AREAS = {"A0": None, "A1": "maritime", "A2": "counterterrorism",
                      "A3": "nonproliferation", "A4": "space", "A5": "pandemics",
                      "A6": "climate", "A7": "peacekeeping", "A8": "stabilization", "A9": "oda"}
    # Rows named in the evidence pack README's "Conflicts between sources", with its note
    # shortened to what concerns the row. Rule: every row a conflict names carries it.
    EVIDENCE_CONFLICTS = {
        "A1-02": "Tonnage: 4,500 t here; a 2019 source gives 4,400 t for the same destroyer.",
        "A1-05": "Sources differ on whether this ship made Korea the third or the fifth Aegis country.",
        "A2-01": "Dong-A's English text swaps the unit types; the Korean version and Hemmings have "
                 "Dongui as the medical unit (from Feb 2002) and Dasan as the engineers (from Feb 2003).",
        "A2-02": "Dong-A's English text swaps the unit types (see A2-01).",
        "A3-01": "One source says the replacement agreement was 'signed' on 22 Apr 2015; MOFA and CRS "
                 "say it was initialed on 22 Apr and signed on 15 Jun 2015.",
        "A3-03": "The BBC gives about $20bn; a Reuters copy gives $40bn, and later cost estimates "
                 "were $36-40bn.",
        "A5-02": "5.3 million birds culled in 2003-04 here; in 2008 a target of 5.32 million was "
                 "called the largest cull (A5-03).",
        "A5-03": "Called the largest cull although the 2003-04 outbreak culled about as many (A5-02).",
        "A5-04": "WHO WPRO: 186 cases, 36 deaths (final); WHO EURO: 184 and 33 (3 Jul 2015); a "
                 "journal abstract: 38 deaths.",
        "A8-01": "Dong-A: 2,800 arrived on 22 Sep 2004 and 800 more were due in Nov; AP: 3,600 were "
                 "sent in Sep 2004 (A8-03).",
        "A8-02": "See A8-01: the 800 are part of the 3,600 that AP puts in the first contingent.",
        "A8-03": "Conflicts with A8-01/A8-02 (2,800 in Sep 2004, then 800 more).",
        "A8-05": "The plan: 320 troops, about 100 civilians, 40 police; JoongAng (Jul 2010) expected "
                 "289 in all, 232 of them soldiers, after staged arrivals.",
    }

    def build_area_evidence(self):
        """Cited facts per area: the evidence pack's A rows plus the course's own finds."""
        pack = self.raw("evidence/evidence.csv")
        extra = read_csv(CURATED / "area_evidence_extra.csv")
        area_ids = {r["area_id"] for r in self.tables["alliance_areas"]}
        rows = []
        for origin, src in (("evidence pack", pack), ("course search", extra)):
            for r in src:
                prefix = r["topic"][:2]
                if not r["topic"].startswith("A") or prefix not in self.EVIDENCE_AREAS:
                    continue  # B (after 2012), C (dates), D (reading) serve other pages
                area = self.EVIDENCE_AREAS[prefix]
                assert area is None or area in area_ids, area
                year = int(re.match(r"\d{4}", r["date"]).group(0))
                words = len(r["excerpt"].split())
                if words > 40:
                    raise ValueError(f"area_evidence {r['item_id']}: excerpt has {words} words (max 40)")
                if not r["address"].startswith(("http://", "https://")):
                    raise ValueError(f"area_evidence {r['item_id']}: address is not a web address")
                rows.append(OrderedDict([
                    ("evidence_id", r["item_id"]), ("area_id", area), ("claim", r["claim"]),
                    ("date", r["date"]), ("year", year), ("beyond_source", year > 2012),
                    ("value", r["value"] or None), ("unit", r["unit"] or None),
                    ("source_title", r["source_title"]), ("publisher", r["publisher"]),
                    ("source_year", to_int(r["year"])), ("address", r["address"]),
                    ("excerpt", r["excerpt"]), ("origin", origin),
                    ("conflict_note", self.EVIDENCE_CONFLICTS.get(r["item_id"])),
                ]))
        unknown = set(self.EVIDENCE_CONFLICTS) - {r["evidence_id"] for r in rows}
        assert not unknown, unknown
        rows.sort(key=lambda r: (r["area_id"] or "", r["evidence_id"]))
        n_extra = sum(r["origin"] == "course search" for r in rows)
        self.add("area_evidence", rows, {
            "title": "Cited facts for the nine areas of cooperation",
            "description": (
                "One fact per row for the evidence briefs of chapter 8.1: the rows of the course's "
                "evidence pack whose topic is A0-A9 (framing and the nine areas; topics B, C and D "
                f"serve other pages), plus {n_extra} rows the course found itself in public documents "
                "(data/curated/area_evidence_extra.csv, ids starting 'S-'), mostly on what the United "
                "States brought to each area. Each row keeps the source's title, publisher, year, web "
                "address and an exact excerpt of at most 40 words that states the fact; 'claim' is our "
                "paraphrase. area_id maps the topic prefix (A1 maritime ... A9 oda; A0 framing has "
                "none). year is the first year in 'date'; beyond_source marks facts after 2012, the "
                "end of the source text. conflict_note carries, for every row that the evidence pack's "
                "README lists under 'Conflicts between sources', what the other sources say: the "
                "disagreement is kept, not resolved. 'value' is kept as text because some values are "
                "compound (e.g. cases; deaths)."),
            "coverage": f"{len(rows)} facts, {min(r['year'] for r in rows)}–{max(r['year'] for r in rows)}",
            "sources": [
                {**raw_source("evidence/evidence.csv"),
                 "title": "Course evidence pack (evidence.csv): cited facts with address and excerpt",
                 "citation": "Compiled for the course from public web pages read one by one; see "
                             "data/raw/evidence/README.md for gaps and conflicts."},
                {"title": "Per-row sources, including the course's own finds (ids 'S-', kept in "
                          "data/curated/area_evidence_extra.csv): see source_title, publisher and address",
                 "path": "area_evidence.csv"}],
            "licenses": [COMPILED_LICENSE],
            "schema": {
                "fields": [
                    F("evidence_id", "string", "Id in the evidence pack (A1-02 ...) or of a course "
                      "find (S-A1-01 ...).", True, pattern=r"^(S-)?A\d-\d{2}$"),
                    F("area_id", "string", "Area of cooperation (alliance_areas.area_id); empty for "
                      "framing facts.", enum=sorted(area_ids)),
                    F("claim", "string", "The fact, in our words.", True),
                    F("date", "string", "When it happened, as precise as the source allows "
                      "(YYYY, YYYY-MM, YYYY-MM-DD; 'a/b' is a span, 'a; b' two dates).", True),
                    F("year", "integer", "First year in date (derived).", True,
                      minimum=1950, maximum=2030),
                    F("beyond_source", "boolean", "true if year is after 2012, the end of the "
                      "source text (derived).", True),
                    F("value", "string", "The number the fact turns on, as given (text)."),
                    F("unit", "string", "What value counts."),
                    F("source_title", "string", "Title of the source (or a description where the "
                      "title was not shown).", True),
                    F("publisher", "string", "Publisher, with mirrors and copies marked.", True),
                    F("source_year", "integer", "Year the source was published; empty if not shown.",
                      minimum=1950, maximum=2030),
                    F("address", "string", "Web address of the source.", True,
                      pattern=r"^https?://\S+$"),
                    F("excerpt", "string", "Exact excerpt (at most 40 words) stating the fact.", True),
                    F("origin", "string", "Where the row comes from.", True,
                      enum=["course search", "evidence pack"]),
                    F("conflict_note", "string", "What other sources say, where they disagree."),
                ],
                "primaryKey": ["evidence_id"],
                "foreignKeys": [{"fields": ["area_id"],
                                 "reference": {"resource": "alliance_areas", "fields": ["area_id"]}}],
            },
        })

    # ======================================================================
    def run(self):
        self.out.mkdir(parents=True, exist_ok=True)
        self.build_troops()
        self.build_rebuild()
        self.build_timeline()
        self.build_easi()
        self.build_gpr()
        self.build_oda()
        self.build_oda_targets()
        self.build_deployments()
        self.build_exercises()
        self.build_sites()
        self.build_areas()
        self.build_principles()
        self.build_implications()
        self.build_area_evidence()
        self.build_geojson()
        for name, rows in self.tables.items():
            written = self.write_csv(self.out / f"{name}.csv", rows)
            # The loader checks a table with Frictionless only when its bytes differ from these.
            resource = next(r for r in self.resources if r["name"] == name)
            resource["hash"] = "sha256:" + hashlib.sha256(written).hexdigest()
        package = OrderedDict([
            ("name", "usrok-data"),
            ("title", "Data for the course on the US–South Korea alliance"),
            ("description",
             "Tables behind the charts and exercises of the open course on Scott Snyder (ed.), "
             "The US–South Korea Alliance (2012). Built by data/build_tables.py from the raw "
             "extracts in data/raw and the hand-curated source-text facts in "
             "data/curated; do not edit the CSVs by hand. Every row is traceable to a source; "
             "where sources disagree all rows are kept and the disagreement is explained. Load "
             "tables with usrok.data.load(name)."),
            ("version", "1.0.0"),
            ("licenses", [COMPILED_LICENSE]),
            ("sources", [BOOK_SOURCE, KANE, ALLEN, TROOPDATA]),
            ("resources", self.resources),
        ])
        text = json.dumps(package, indent=2, ensure_ascii=False) + "\n"
        (self.out / "datapackage.json").write_text(text, encoding="utf-8")
        return package

    @staticmethod
    def write_csv(path: Path, rows: list[dict]):
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(list(rows[0].keys()))
        for r in rows:
            w.writerow([fmt(v) for v in r.values()])
        data = buf.getvalue().encode("utf-8")
        path.write_bytes(data)
        return data


def build(raw: Path, source_text: Path | None, out: Path) -> list[str]:
    """Build the package into ``out``; returns the names of the files written."""
    b = Builder(raw, source_text, out)
    pkg = b.run()
    return ["datapackage.json"] + [r["path"] for r in pkg["resources"]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raw", type=Path, default=RAW,
                   help="folder with the raw extracts (default: data/raw)")
    p.add_argument("--source-text", type=Path,
                   default=Path(os.environ.get("USROK_SOURCE_TEXT", DEFAULT_SOURCE_TEXT)),
                   help="source text used to check evidence phrases (skipped if missing)")
    p.add_argument("--out", type=Path, default=HERE, help="output folder (default: data/)")
    p.add_argument("--check", action="store_true",
                   help="build into a temporary folder and compare with --out")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the frictionless validation of the result")
    a = p.parse_args(argv)
    if not a.raw.is_dir():
        p.error(f"raw data folder not found: {a.raw}")
    if a.check:
        with tempfile.TemporaryDirectory() as tmp:
            files = build(a.raw, a.source_text, Path(tmp))
            diff = [f for f in files if not (a.out / f).exists()
                    or not filecmp.cmp(Path(tmp) / f, a.out / f, shallow=False)]
        if diff:
            print("out of date: " + ", ".join(diff), file=sys.stderr)
            return 1
        print(f"up to date: {len(files)} files")
        return 0
    files = build(a.raw, a.source_text, a.out)
    if not a.no_validate:
        try:
            from frictionless import Package
        except ImportError:
            print("frictionless not installed: validation skipped", file=sys.stderr)
        else:
            report = Package(str(a.out / "datapackage.json")).validate()
            if not report.valid:
                for e in report.flatten(["title", "rowNumber", "fieldName", "message"])[:20]:
                    print(e, file=sys.stderr)
                return 1
    print(f"wrote {len(files)} files to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
