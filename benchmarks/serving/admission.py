"""Cost of request admission (validation and coercion to the signature's types).

Times `Validator.records` on one-row and 64-row bodies of the breast-cancer features (30
float columns) and of a mixed signature (float, int, text category, bool), best of 9
interleaved rounds. The baseline, measured in the same run, is `orjson.loads` of the same
body: what every request pays before admission. With ``--old FILE`` (a validation.py of
another revision, e.g. ``git show 5fde2a8:src/conveyor/serving/validation.py >
/tmp/old.py``) that module's Validator is timed too, interleaved, for an A/B of the
request path.

    .venv/bin/python benchmarks/serving/admission.py [--old /tmp/old.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import timeit
from types import ModuleType
from typing import Any

import orjson
from sklearn.datasets import load_breast_cancer

from conveyor.serving import validation


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("old_validation", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_validation"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", help="a validation.py to compare with")
    args = parser.parse_args()
    X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
    floats = X.to_dict(orient="records")
    mixed = [{"a": 1.5 + i, "b": i, "c": "x" if i % 2 else 2, "d": bool(i % 2)} for i in range(64)]
    modules = {"current": validation}
    if args.old:
        modules["old"] = _load(args.old)
    cases = {
        "float30 x1": (floats[:1], lambda m: [m.ColumnRule(str(c), "float") for c in X.columns]),
        "float30 x64": (floats[:64], lambda m: [m.ColumnRule(str(c), "float") for c in X.columns]),
        "mixed x1": (mixed[1:2], None),
        "mixed x64": (mixed, None),
    }
    print(f"{'case':<12} {'json parse':>11} " + " ".join(f"{n:>10}" for n in modules) + "  ratio")
    for name, (rows, make_rules) in cases.items():
        body = orjson.dumps({"records": rows})
        number = 20_000 if len(rows) == 1 else 2_000
        calls: list[Any] = [lambda body=body: orjson.loads(body)]
        for module in modules.values():
            rules = (
                make_rules(module)
                if make_rules
                else [
                    module.ColumnRule("a", "float"),
                    module.ColumnRule("b", "int"),
                    module.ColumnRule("c", "category", categories=frozenset({"x", "2"})),
                    module.ColumnRule("d", "bool"),
                ]
            )
            validator = module.Validator(rules)
            calls.append(lambda v=validator, r=rows: v.records(r))
        # Interleaved rounds, best of each: other load on the machine hits all alike.
        best = [float("inf")] * len(calls)
        for _ in range(9):
            for i, call in enumerate(calls):
                best[i] = min(best[i], timeit.timeit(call, number=number) / number * 1e6)
        parse, times = best[0], best[1:]
        shown = " ".join(f"{t:>8.1f}us" for t in times)
        ratio = times[0] / parse
        extra = f", current/old {times[0] / times[1]:.2f}" if len(times) > 1 else ""
        print(f"{name:<12} {parse:>9.1f}us {shown}  admission/parse {ratio:.2f}{extra}")


if __name__ == "__main__":
    main()
