"""A submission's answers as data: what the sandbox hands to the tests, in JSON.

The sandbox runs the student's notebook and records (:class:`usrok.runner.Recorder`), at
each ``grader.check("qN")`` and at the end, the variables each question's tests read.
Values become JSON that the grader can rebuild without running anything of the student's:

- ``None``, booleans, numbers, strings, lists and dicts with string keys as themselves;
- tuples, sets, dicts with other keys, NaN and infinities, NumPy scalars and arrays,
  dates, pandas ``Series``, ``DataFrame`` and ``Index`` (values, index, names, dtypes),
  as small tagged objects (``{"__t": "series", ...}``);
- Altair charts as their Vega-Lite spec, rebuilt as a :class:`ChartSpec` (a dict with a
  ``to_dict()`` method, so checks written for charts accept it);
- anything else (a function, a module, an object too large or too deep) as an
  :class:`Unsupported` marker, which no test accepts.

:func:`encode` runs in the student's kernel (inside the sandbox), :func:`decode` in the
grader. Decoding never unpickles and never evaluates anything; sizes and depths are
bounded on both sides. Only the standard library is imported at import time.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["ChartSpec", "Unsupported", "encode", "decode", "loads", "MAX_BYTES", "MAX_DEPTH"]

MAX_DEPTH = 40           # nesting of one value (a DataFrame counts as two levels)
MAX_ITEMS = 2_000_000    # list items, dict entries and cells of one value
MAX_BYTES = 32_000_000   # the whole answers document, as JSON text
TAG = "__t"

_NUMPY_SCALARS = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64"}


class ChartSpec(dict):
    """An Altair chart as the grader sees it: its Vega-Lite spec, with ``to_dict()``."""

    def to_dict(self, *args, **kwargs) -> dict:
        return dict(self)


class Unsupported:
    """A value that could not be recorded as data (its type and why); no test accepts it."""

    def __init__(self, kind: str, why: str = ""):
        self.kind, self.why = kind, why

    def __repr__(self) -> str:
        return f"<{self.kind} not recorded: {self.why}>" if self.why else f"<{self.kind} not recorded>"

    def __eq__(self, other) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


class _TooBig(Exception):
    pass


# ---------------------------------------------------------------------------- encoding
def _kind(x) -> str:
    t = type(x)
    return f"{t.__module__}.{t.__qualname__}"


def _float(x: float):
    if math.isnan(x):
        return {TAG: "float", "v": "nan"}
    if math.isinf(x):
        return {TAG: "float", "v": "inf" if x > 0 else "-inf"}
    return x


class _Encoder:
    def __init__(self, max_items: int = MAX_ITEMS):
        self.left = max_items

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise _TooBig("too large")

    def value(self, x, depth: int = 0):
        if depth > MAX_DEPTH:
            raise _TooBig("nested too deeply")
        self.spend(1)
        if x is None or type(x) in (bool, str):
            return x
        if type(x) is int:
            return x if abs(x) < 10**300 else {TAG: "unsupported", "kind": "int", "why": "too large"}
        if type(x) is float:
            return _float(x)
        if type(x) in (list, tuple, set, frozenset):
            items = sorted(x, key=repr) if type(x) in (set, frozenset) else x
            self.spend(len(items))
            enc = [self.value(i, depth + 1) for i in items]
            return enc if type(x) is list else {TAG: type(x).__name__, "v": enc}
        if type(x) is dict:
            self.spend(len(x))
            if all(type(k) is str for k in x) and TAG not in x:
                return {k: self.value(v, depth + 1) for k, v in x.items()}
            return {TAG: "dict", "v": [[self.value(k, depth + 1), self.value(v, depth + 1)] for k, v in x.items()]}
        if type(x) is range:
            return {TAG: "range", "v": [x.start, x.stop, x.step]}
        module = type(x).__module__ or ""
        if module == "numpy" or module.startswith("numpy."):
            return self.numpy(x, depth)
        if module.startswith("pandas"):
            return self.pandas(x, depth)
        if module.startswith("altair") and hasattr(x, "to_dict"):
            try:
                spec = x.to_dict()
            except Exception:
                spec = x.to_dict(validate=False)
            return {TAG: "chart", "v": self.value(json.loads(json.dumps(spec, default=str)), depth + 1)}
        if module == "datetime" and type(x).__name__ in ("date", "datetime", "timedelta"):
            if type(x).__name__ == "timedelta":
                return {TAG: "timedelta", "v": x.total_seconds()}
            return {TAG: type(x).__name__, "v": x.isoformat()}
        return {TAG: "unsupported", "kind": _kind(x), "why": "not data"}

    def numpy(self, x, depth):
        import numpy as np

        if isinstance(x, np.generic) and x.dtype.name in _NUMPY_SCALARS:
            v = x.item()
            return {TAG: "np", "dtype": x.dtype.name, "v": _float(v) if isinstance(v, float) else v}
        if isinstance(x, np.str_):
            return str(x)
        if isinstance(x, np.ndarray) and (x.dtype.name in _NUMPY_SCALARS or x.dtype.kind in "OU"):
            self.spend(int(x.size))
            return {TAG: "ndarray", "dtype": x.dtype.name, "shape": list(x.shape),
                    "v": [self.value(i.item() if isinstance(i, np.generic) else i, depth + 1)
                          for i in x.ravel(order="C")]}
        if isinstance(x, np.datetime64):
            return {TAG: "datetime64", "v": str(x)}
        return {TAG: "unsupported", "kind": _kind(x), "why": "not data"}

    def scalar_list(self, values, depth):
        import numpy as np

        out = []
        for v in values:
            if isinstance(v, np.generic):
                v = v.item()
            out.append(self.value(v, depth + 1) if not _is_missing(v) else None)
        return out

    def index(self, ix, depth):
        import pandas as pd

        self.spend(len(ix))
        if isinstance(ix, pd.RangeIndex):
            return {TAG: "range_index", "start": ix.start, "stop": ix.stop, "step": ix.step,
                    "name": self.value(ix.name, depth + 1)}
        if isinstance(ix, pd.MultiIndex):
            return {TAG: "multi_index", "names": [self.value(n, depth + 1) for n in ix.names],
                    "levels": [self.scalar_list(ix.get_level_values(i), depth) for i in range(ix.nlevels)],
                    "dtypes": [str(ix.get_level_values(i).dtype) for i in range(ix.nlevels)]}
        return {TAG: "index", "dtype": str(ix.dtype), "name": self.value(ix.name, depth + 1),
                "v": self.scalar_list(ix, depth)}

    def pandas(self, x, depth):
        import pandas as pd

        if isinstance(x, pd.DataFrame):
            self.spend(x.size)
            return {TAG: "frame", "index": self.index(x.index, depth + 1),
                    "columns": self.index(x.columns, depth + 1),
                    "dtypes": [str(t) for t in x.dtypes],
                    "v": [self.scalar_list(x.iloc[:, i], depth + 1) for i in range(x.shape[1])]}
        if isinstance(x, pd.Series):
            self.spend(len(x))
            return {TAG: "series", "index": self.index(x.index, depth + 1), "dtype": str(x.dtype),
                    "name": self.value(x.name, depth + 1), "v": self.scalar_list(x, depth + 1)}
        if isinstance(x, pd.Index):
            return self.index(x, depth + 1)
        if isinstance(x, pd.Timestamp):
            return {TAG: "timestamp", "v": x.isoformat()}
        if isinstance(x, pd.Timedelta):
            return {TAG: "pd_timedelta", "v": x.value}
        if x is pd.NA:
            return {TAG: "na"}
        if x is pd.NaT:
            return {TAG: "nat"}
        return {TAG: "unsupported", "kind": _kind(x), "why": "not data"}


def _is_missing(v) -> bool:
    try:
        import pandas as pd

        return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))
    except ImportError:  # pragma: no cover
        return v is None


def encode(value) -> Any:
    """``value`` as JSON-ready data (see the module docstring); never raises."""
    try:
        return _Encoder().value(value)
    except _TooBig as e:
        return {TAG: "unsupported", "kind": _kind(value), "why": str(e)}
    except RecursionError:
        return {TAG: "unsupported", "kind": _kind(value), "why": "nested too deeply"}
    except Exception as e:  # a broken object (its own methods raise)
        return {TAG: "unsupported", "kind": _kind(value), "why": f"{type(e).__name__} while recording"}


# ---------------------------------------------------------------------------- decoding
def _decode_float(v):
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(v, math.nan) if isinstance(v, str) else float(v)


def _decode_index(d):
    import pandas as pd

    kind = d.get(TAG)
    if kind == "range_index":
        return pd.RangeIndex(int(d["start"]), int(d["stop"]), int(d["step"]), name=decode(d.get("name")))
    if kind == "multi_index":
        levels = [_typed(pd.Series([decode(v) for v in lv], dtype="object"), t)
                  for lv, t in zip(d["levels"], d["dtypes"])]
        return pd.MultiIndex.from_arrays(levels, names=[decode(n) for n in d["names"]])
    values = _typed(pd.Series([decode(v) for v in d["v"]], dtype="object"), d.get("dtype", "object"))
    return pd.Index(values, name=decode(d.get("name")))


def _typed(series, dtype: str):
    """The column with its recorded dtype where pandas can restore it (else as objects)."""
    try:
        return series.astype(dtype)
    except (TypeError, ValueError):
        if dtype.startswith(("int", "uint")):  # whole numbers with gaps
            try:
                return series.astype("float64")
            except (TypeError, ValueError):
                pass
        return series


def decode(data) -> Any:
    """Rebuild a value from :func:`encode`'s output (data only; unknown tags -> Unsupported)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    kind = data.get(TAG)
    if kind is None:
        return {k: decode(v) for k, v in data.items()}
    v = data.get("v")
    if kind == "float":
        return _decode_float(v)
    if kind in ("tuple", "set", "frozenset"):
        items = [decode(i) for i in v]
        try:
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](items)
        except TypeError:  # unhashable items cannot form a set
            return Unsupported(kind, "unhashable items")
    if kind == "dict":
        out = {}
        for k, val in v:
            try:
                out[decode(k)] = decode(val)
            except TypeError:
                return Unsupported("dict", "unhashable key")
        return out
    if kind == "range":
        return range(*[int(i) for i in v])
    if kind == "chart":
        spec = decode(v)
        return ChartSpec(spec) if isinstance(spec, dict) else Unsupported("chart", "not a spec")
    if kind == "unsupported":
        return Unsupported(str(data.get("kind", "?")), str(data.get("why", "")))
    if kind in ("date", "datetime"):
        import datetime as dt

        return getattr(dt, kind).fromisoformat(v)
    if kind == "timedelta":
        import datetime as dt

        return dt.timedelta(seconds=float(v))
    if kind == "np":
        import numpy as np

        if data.get("dtype") not in _NUMPY_SCALARS:
            return Unsupported("numpy scalar", "unknown dtype")
        val = _decode_float(v) if isinstance(v, (dict, str)) else v
        if isinstance(val, dict):
            val = _decode_float(val.get("v"))
        return np.dtype(data["dtype"]).type(val)
    if kind == "ndarray":
        import numpy as np

        items = [decode(i) for i in v]
        dtype = data.get("dtype")
        arr = np.array(items, dtype=dtype if dtype in _NUMPY_SCALARS else object)
        return arr.reshape([int(s) for s in data.get("shape", [len(items)])])
    if kind == "datetime64":
        import numpy as np

        return np.datetime64(v)
    if kind in ("index", "range_index", "multi_index"):
        return _decode_index(data)
    if kind == "series":
        import pandas as pd

        values = _typed(pd.Series([decode(i) for i in v], dtype="object"), data.get("dtype", "object"))
        values.index = _decode_index(data["index"])
        values.name = decode(data.get("name"))
        return values
    if kind == "frame":
        import pandas as pd

        columns = _decode_index(data["columns"])
        index = _decode_index(data["index"])
        cols = [_typed(pd.Series([decode(i) for i in col], dtype="object"), t).reset_index(drop=True)
                for col, t in zip(v, data.get("dtypes", []))]
        if len(cols) != len(columns):
            return Unsupported("DataFrame", "columns and values disagree")
        frame = pd.concat(cols, axis=1, ignore_index=True) if cols else pd.DataFrame(index=range(len(index)))
        frame.columns = columns
        frame.index = index
        return frame
    if kind == "timestamp":
        import pandas as pd

        return pd.Timestamp(v)
    if kind == "pd_timedelta":
        import pandas as pd

        return pd.Timedelta(int(v))
    if kind == "na":
        import pandas as pd

        return pd.NA
    if kind == "nat":
        import pandas as pd

        return pd.NaT
    return Unsupported(str(kind), "unknown kind")


def loads(text: str | bytes) -> dict[str, dict]:
    """The recorded answers, ``{question: {variable: value}}``, from the recorder's JSON lines.

    The last record of each question wins. Raises ``ValueError`` for a document that is too
    large, too deep or not the recorder's format.
    """
    if len(text) > MAX_BYTES:
        raise ValueError(f"the answers are larger than {MAX_BYTES // 1_000_000} MB")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    records: dict[str, dict] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except RecursionError:
            raise ValueError("the answers are nested too deeply") from None
        if not (isinstance(rec, dict) and isinstance(rec.get("question"), str)
                and isinstance(rec.get("values"), dict)):
            raise ValueError("the answers are not in the recorder's format")
        records[rec["question"]] = rec
    out = {}
    for q, rec in records.items():
        try:
            out[q] = {str(k): decode(v) for k, v in rec["values"].items()}
        except RecursionError:
            raise ValueError("the answers are nested too deeply") from None
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
            out[q] = {str(k): Unsupported("value", f"unreadable ({type(e).__name__})") for k in rec["values"]}
    return out
