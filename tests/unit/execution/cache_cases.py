"""Code-change cases for the cache matrix: a project, an edit on disk, and what must happen.

Every case is a small package whose pipeline ``p`` calls step ``s``; ``rerun`` says whether
the edit changes what the step depends on (so it must run again) or not (a cache hit).
``PKG`` in sources stands for the package's (unique) name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PIPE = """
from conveyor import pipeline
from .steps import s

@pipeline
def p():
    return s(3)
"""


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]
    edits: list[tuple[str, str, str]]
    rerun: bool
    extra: dict[str, str] = field(default_factory=dict)

    def all_files(self) -> dict[str, str]:
        return {"pipe.py": PIPE, **self.files}


def case(id: str, rerun: bool, edits: list[tuple[str, str, str]], **files: str) -> Case:
    return Case(id, {f"{k}.py": v for k, v in files.items()}, edits, rerun)


CASES = [
    # ------------------------------------------------------------------ module-level values
    case(
        "dict-in-step-module",
        True,
        [("steps.py", '"threshold": 0.5', '"threshold": 0.7')],
        steps="""
        from conveyor import step
        CONFIG = {"threshold": 0.5, "name": "x"}

        @step
        def s(x: int) -> float:
            return x * CONFIG["threshold"]
        """,
    ),
    case(
        "dict-imported-from-other-module",
        True,
        [("config.py", '"threshold": 0.5', '"threshold": 0.9')],
        config='CONFIG = {"threshold": 0.5}\n',
        steps="""
        from conveyor import step
        from .config import CONFIG

        @step
        def s(x: int) -> float:
            return x * CONFIG["threshold"]
        """,
    ),
    case(
        "list-value",
        True,
        [("steps.py", '["a", "b"]', '["a", "b", "c"]')],
        steps="""
        from conveyor import step
        COLUMNS = ["a", "b"]

        @step
        def s(x: int) -> int:
            return x * len(COLUMNS)
        """,
    ),
    case(
        "set-value",
        True,
        [("steps.py", '{"a", "b"}', '{"a", "b", "c"}')],
        steps="""
        from conveyor import step
        ALLOWED = {"a", "b"}

        @step
        def s(x: int) -> list:
            return sorted(ALLOWED) * x
        """,
    ),
    case(
        "nested-tuple-value",
        True,
        [("steps.py", "((1, 2), (3, 4))", "((1, 2), (3, 5))")],
        steps="""
        from conveyor import step
        SHAPE = ((1, 2), (3, 4))

        @step
        def s(x: int) -> int:
            return x + SHAPE[1][1]
        """,
    ),
    case(
        "dataclass-instance-value",
        True,
        [("config.py", "Settings(k=2)", "Settings(k=3)")],
        config="""
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Settings:
            k: int

        SETTINGS = Settings(k=2)
        """,
        steps="""
        from conveyor import step
        from .config import SETTINGS

        @step
        def s(x: int) -> int:
            return x * SETTINGS.k
        """,
    ),
    case(
        "enum-member-value",
        True,
        [("steps.py", "FAST = 1", "FAST = 4")],
        steps="""
        import enum
        from conveyor import step

        class Mode(enum.Enum):
            FAST = 1
            SLOW = 2

        MODE = Mode.FAST

        @step
        def s(x: int) -> int:
            return x * MODE.value
        """,
    ),
    case(
        "module-instance-constructor-argument",
        True,
        [("steps.py", "Scorer(2)", "Scorer(5)")],
        steps="""
        from conveyor import step

        class Scorer:
            def __init__(self, weight):
                self.weight = weight

            def score(self, x):
                return x * self.weight

        SCORER = Scorer(2)

        @step
        def s(x: int) -> int:
            return SCORER.score(x)
        """,
    ),
    case(
        "module-instance-method-body",
        True,
        [("scoring.py", "return x * self.weight", "return x * self.weight + 1")],
        scoring="""
        class Scorer:
            def __init__(self, weight):
                self.weight = weight

            def score(self, x):
                return x * self.weight

        SCORER = Scorer(2)
        """,
        steps="""
        from conveyor import step
        from .scoring import SCORER

        @step
        def s(x: int) -> int:
            return SCORER.score(x)
        """,
    ),
    # ------------------------------------------------------------------ defaults
    case(
        "step-parameter-default-from-constant",
        True,
        [("steps.py", "DEFAULT = 2", "DEFAULT = 7")],
        steps="""
        from conveyor import step
        DEFAULT = 2

        @step
        def s(x: int, k: int = DEFAULT) -> int:
            return x * k
        """,
    ),
    case(
        "helper-default-from-constant-in-other-module",
        True,
        [("helpers.py", "FACTOR = 10", "FACTOR = 11")],
        helpers="""
        FACTOR = 10

        def scale(v, k=FACTOR):
            return v * k
        """,
        steps="""
        from conveyor import step
        from .helpers import scale

        @step
        def s(x: int) -> int:
            return scale(x)
        """,
    ),
    # ------------------------------------------------------------------ classes
    case(
        "method-inherited-from-base-in-other-module",
        True,
        [("base.py", "return x + 1", "return x + 2")],
        base="""
        class Base:
            def bump(self, x):
                return x + 1
        """,
        steps="""
        from conveyor import step
        from .base import Base

        class Child(Base):
            pass

        @step
        def s(x: int) -> int:
            return Child().bump(x)
        """,
    ),
    case(
        "property-reading-a-constant",
        True,
        [("steps.py", "LIMIT = 4", "LIMIT = 40")],
        steps="""
        from conveyor import step
        LIMIT = 4

        class Box:
            @property
            def limit(self):
                return LIMIT

        @step
        def s(x: int) -> int:
            return x + Box().limit
        """,
    ),
    case(
        "classmethod-body",
        True,
        [("steps.py", "return cls.RATE * x", "return cls.RATE * x - 1")],
        steps="""
        from conveyor import step

        class Model:
            RATE = 3

            @classmethod
            def apply(cls, x):
                return cls.RATE * x

        @step
        def s(x: int) -> int:
            return Model.apply(x)
        """,
    ),
    case(
        "class-attribute",
        True,
        [("steps.py", "RATE = 3", "RATE = 6")],
        steps="""
        from conveyor import step

        class Model:
            RATE = 3

        @step
        def s(x: int) -> int:
            return Model.RATE * x
        """,
    ),
    case(
        "staticmethod-of-external-function",
        True,
        [("ext.py", "return v * 2", "return v * 3")],
        ext="""
        def double(v):
            return v * 2
        """,
        steps="""
        from conveyor import step
        from .ext import double

        class Ops:
            run = staticmethod(double)

        @step
        def s(x: int) -> int:
            return Ops.run(x)
        """,
    ),
    # ------------------------------------------------------------------ closures, dynamic
    case(
        "closure-over-a-dict",
        True,
        [("steps.py", '{"a": 1}', '{"a": 2}')],
        steps="""
        from conveyor import step

        def make():
            table = {"a": 1}

            def lookup(key):
                return table[key]

            return lookup

        lookup = make()

        @step
        def s(x: int) -> int:
            return x + lookup("a")
        """,
    ),
    case(
        "globals-lookup",
        True,
        [("steps.py", "K = 1", "K = 2")],
        steps="""
        from conveyor import step
        K = 1

        @step
        def s(x: int) -> int:
            return x + globals()["K"]
        """,
    ),
    case(
        "getattr-module-literal-name",
        True,
        [("helpers.py", "return v + 1", "return v + 100")],
        helpers="""
        def f(v):
            return v + 1
        """,
        steps="""
        from conveyor import step
        from . import helpers

        @step
        def s(x: int) -> int:
            return getattr(helpers, "f")(x)
        """,
    ),
    case(
        "getattr-computed-name",
        True,
        [("helpers.py", "return v + 1", "return v + 5")],
        helpers="""
        def f(v):
            return v + 1
        """,
        steps="""
        from conveyor import step
        from . import helpers
        NAME = "f"

        @step
        def s(x: int) -> int:
            name = NAME
            return getattr(helpers, name)(x)
        """,
    ),
    case(
        "dispatch-table-of-callables",
        True,
        [("handlers.py", "return v * 10", "return v * 20")],
        handlers="""
        def scale(v):
            return v * 10

        def shift(v):
            return v + 10

        HANDLERS = {"scale": scale, "shift": shift}
        """,
        steps="""
        from conveyor import step
        from .handlers import HANDLERS

        @step
        def s(x: int) -> int:
            return HANDLERS["scale"](x)
        """,
    ),
    case(
        "import-module-by-literal-name",
        True,
        [("helpers.py", "return v + 1", "return v + 4")],
        helpers="""
        def f(v):
            return v + 1
        """,
        steps="""
        import importlib
        from conveyor import step

        @step
        def s(x: int) -> int:
            return importlib.import_module("PKG.helpers").f(x)
        """,
    ),
    case(
        "module-level-getattr",
        True,
        [("lazy.py", "v + 1", "v + 2")],
        lazy="""
        def __getattr__(name):
            return lambda v: v + 1
        """,
        steps="""
        from conveyor import step
        from . import lazy

        @step
        def s(x: int) -> int:
            return lazy.f(x)
        """,
    ),
    case(
        "aliased-import-of-a-value",
        True,
        [("config.py", "'k': 1", "'k': 2")],
        config="A = {'k': 1}\n",
        steps="""
        from conveyor import step
        from .config import A as CONFIG

        @step
        def s(x: int) -> int:
            return x + CONFIG['k']
        """,
    ),
    case(
        "class-registry-filled-by-a-decorator",
        True,
        [("reg.py", "return v * 2", "return v * 3")],
        reg="""
        class Registry:
            table = {}

            @classmethod
            def add(cls, fn):
                cls.table[fn.__name__] = fn
                return fn

        @Registry.add
        def double(v):
            return v * 2
        """,
        steps="""
        from conveyor import step
        from .reg import Registry

        @step
        def s(x: int) -> int:
            return Registry.table['double'](x)
        """,
    ),
    case(
        "function-held-by-an-instance-attribute",
        True,
        [("h.py", "v + 1", "v + 7")],
        h="""
        def f(v):
            return v + 1
        """,
        steps="""
        from conveyor import step
        from .h import f

        class Holder:
            def __init__(self, fn):
                self.fn = fn

        HOLDER = Holder(f)

        @step
        def s(x: int) -> int:
            return HOLDER.fn(x)
        """,
    ),
    case(
        "dataclass-default-factory",
        True,
        [("steps.py", "['a']", "['a', 'b']")],
        steps="""
        from dataclasses import dataclass, field
        from conveyor import step

        @dataclass
        class Cfg:
            cols: list = field(default_factory=lambda: ['a'])

        @step
        def s(x: int) -> int:
            return x + len(Cfg().cols)
        """,
    ),
    case(
        "unrelated-function-next-to-an-abc",
        False,
        [("steps.py", "return 'o1'", "return 'o2'")],
        steps="""
        import abc
        from conveyor import step

        class Base(abc.ABC):
            @abc.abstractmethod
            def f(self): ...

        class Impl(Base):
            def f(self):
                return 1

        def other():
            return 'o1'

        @step
        def s(x: int) -> int:
            return x + Impl().f()
        """,
    ),
    case(
        "eval-of-a-name",
        True,
        [("steps.py", "OFFSET = 1", "OFFSET = 3")],
        steps="""
        from conveyor import step
        OFFSET = 1

        @step
        def s(x: int) -> int:
            return x + eval("OFFSET")
        """,
    ),
    # ------------------------------------------------------------------ wrappers
    case(
        "wraps-decorator-body",
        True,
        [("deco.py", "return fn(*args, **kwargs) + 1", "return fn(*args, **kwargs) + 2")],
        deco="""
        import functools

        def bump(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                return fn(*args, **kwargs) + 1
            return wrapper
        """,
        steps="""
        from conveyor import step
        from .deco import bump

        @step
        @bump
        def s(x: int) -> int:
            return x
        """,
    ),
    case(
        "decorated-helper-body-behind-wraps",
        True,
        [("steps.py", "return v * 2", "return v * 4")],
        deco="""
        import functools

        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return fn(*args)
            return wrapper
        """,
        steps="""
        from conveyor import step
        from .deco import logged

        @logged
        def helper(v):
            return v * 2

        @step
        def s(x: int) -> int:
            return helper(x)
        """,
    ),
    case(
        "partial-arguments",
        True,
        [("steps.py", "partial(add, 5)", "partial(add, 6)")],
        steps="""
        from functools import partial
        from conveyor import step

        def add(a, b):
            return a + b

        add_some = partial(add, 5)

        @step
        def s(x: int) -> int:
            return add_some(x)
        """,
    ),
    case(
        "partial-target-body",
        True,
        [("ops.py", "return a + b", "return a + b + 1")],
        ops="""
        from functools import partial

        def add(a, b):
            return a + b

        add_five = partial(add, b=5)
        """,
        steps="""
        from conveyor import step
        from .ops import add_five

        @step
        def s(x: int) -> int:
            return add_five(x)
        """,
    ),
    case(
        "lru-cached-helper-body",
        True,
        [("steps.py", "return v * v", "return v * v + 1")],
        steps="""
        import functools
        from conveyor import step

        @functools.lru_cache(maxsize=None)
        def square(v):
            return v * v

        @step
        def s(x: int) -> int:
            return square(x)
        """,
    ),
    # ------------------------------------------------------------------ modules, bindings
    case(
        "import-pkg-sub-then-attribute-chain",
        True,
        [("sub/mod.py", "return v - 1", "return v - 2")],
        **{
            "sub/__init__": "",
            "sub/mod": """
            def f(v):
                return v - 1
            """,
            "steps": """
            import PKG.sub.mod
            from conveyor import step

            @step
            def s(x: int) -> int:
                return PKG.sub.mod.f(x)
            """,
        },
    ),
    case(
        "helper-imported-inside-the-step-body",
        True,
        [("helpers.py", "return v * 7", "return v * 8")],
        helpers="""
        def f(v):
            return v * 7
        """,
        steps="""
        from conveyor import step

        @step
        def s(x: int) -> int:
            from .helpers import f
            return f(x)
        """,
    ),
    case(
        "helper-two-modules-away",
        True,
        [("low.py", "return v + 1", "return v + 9")],
        low="""
        def base(v):
            return v + 1
        """,
        mid="""
        from .low import base

        def middle(v):
            return base(v) * 2
        """,
        steps="""
        from conveyor import step
        from .mid import middle

        @step
        def s(x: int) -> int:
            return middle(x)
        """,
    ),
    case(
        "name-rebound-to-another-function",
        True,
        [("steps.py", "from .ops import inc as op", "from .ops import dec as op")],
        ops="""
        def inc(v):
            return v + 1

        def dec(v):
            return v - 1
        """,
        steps="""
        from conveyor import step
        from .ops import inc as op

        @step
        def s(x: int) -> int:
            return op(x)
        """,
    ),
    case(
        "two-names-swapped",
        True,
        [("steps.py", "FIRST, SECOND = inc, dec", "FIRST, SECOND = dec, inc")],
        steps="""
        from conveyor import step

        def inc(v):
            return v + 1

        def dec(v):
            return v - 1

        FIRST, SECOND = inc, dec

        @step
        def s(x: int) -> int:
            return FIRST(x) * 10 + SECOND(x)
        """,
    ),
    case(
        "library-function-rebound",
        True,
        [("steps.py", "from math import floor as rnd", "from math import ceil as rnd")],
        steps="""
        from math import floor as rnd
        from conveyor import step

        @step
        def s(x: int) -> int:
            return rnd(x / 2)
        """,
    ),
    case(
        "nested-function-body",
        True,
        [("steps.py", "return v + 1", "return v + 2")],
        steps="""
        from conveyor import step

        @step
        def s(x: int) -> int:
            def inner(v):
                return v + 1
            return inner(x)
        """,
    ),
    case(
        "lambda-value",
        True,
        [("steps.py", "lambda v: v + 1", "lambda v: v + 3")],
        steps="""
        from conveyor import step
        F = lambda v: v + 1  # noqa: E731

        @step
        def s(x: int) -> int:
            return F(x)
        """,
    ),
    case(
        "fallback-unrelated-function-in-same-module",
        True,
        [("steps.py", "return 'unused'", "return 'changed'")],
        steps="""
        from conveyor import step
        K = 1

        def unrelated():
            return 'unused'

        @step
        def s(x: int) -> int:
            return x + globals()["K"]
        """,
    ),
    # ------------------------------------------------------------------ pipeline literals
    case(
        "pipeline-literal-list-vs-tuple",
        True,
        [("pipe.py", "s([1, 2])", "s((1, 2))")],
        pipe="""
        from conveyor import pipeline
        from .steps import s

        @pipeline
        def p():
            return s([1, 2])
        """,
        steps="""
        from conveyor import step

        @step
        def s(x: object) -> str:
            return type(x).__name__
        """,
    ),
    case(
        "pipeline-literal-int-vs-str-keys",
        True,
        [("pipe.py", 's({1: "x"})', 's({"1": "x"})')],
        pipe="""
        from conveyor import pipeline
        from .steps import s

        @pipeline
        def p():
            return s({1: "x"})
        """,
        steps="""
        from conveyor import step

        @step
        def s(x: object) -> str:
            return type(next(iter(x))).__name__
        """,
    ),
    case(
        "pipeline-literal-bool-vs-int",
        True,
        [("pipe.py", "s(True)", "s(1)")],
        pipe="""
        from conveyor import pipeline
        from .steps import s

        @pipeline
        def p():
            return s(True)
        """,
        steps="""
        from conveyor import step

        @step
        def s(x: object) -> str:
            return repr(x)
        """,
    ),
    case(
        "pipeline-literal-int-vs-float",
        True,
        [("pipe.py", "s(1)", "s(1.0)")],
        pipe="""
        from conveyor import pipeline
        from .steps import s

        @pipeline
        def p():
            return s(1)
        """,
        steps="""
        from conveyor import step

        @step
        def s(x: object) -> str:
            return repr(x)
        """,
    ),
    # ------------------------------------------------------------------ edits that must hit
    case(
        "comment-in-step",
        False,
        [("steps.py", "return x + 1", "return x + 1  # why: off by one")],
        steps="""
        from conveyor import step

        @step
        def s(x: int) -> int:
            # a comment
            return x + 1
        """,
    ),
    case(
        "formatting-of-step",
        False,
        [
            (
                "steps.py",
                "    return max(x, 1) + len([1, 2])",
                "\n\n    return max(\n        x,\n        1,\n    ) + len([1,\n 2])",
            )
        ],
        steps="""
        from conveyor import step

        @step
        def s(x: int) -> int:
            return max(x, 1) + len([1, 2])
        """,
    ),
    case(
        "unrelated-function-in-same-module",
        False,
        [("steps.py", "return 'old'", "return 'new'")],
        steps="""
        from conveyor import step

        def unrelated():
            return 'old'

        @step
        def s(x: int) -> int:
            return x + 1
        """,
    ),
    case(
        "unrelated-value-in-same-module",
        False,
        [("steps.py", "OTHER = {'a': 1}", "OTHER = {'a': 2}")],
        steps="""
        from conveyor import step
        USED = 2
        OTHER = {'a': 1}

        @step
        def s(x: int) -> int:
            return x * USED
        """,
    ),
    case(
        "unrelated-function-in-helper-module",
        False,
        [("helpers.py", "return 'g'", "return 'g2'")],
        helpers="""
        def f(v):
            return v + 1

        def g():
            return 'g'
        """,
        steps="""
        from conveyor import step
        from . import helpers

        @step
        def s(x: int) -> int:
            return helpers.f(x)
        """,
    ),
    case(
        "comment-and-blank-lines-in-helper",
        False,
        [("helpers.py", "def f(v):\n", "# helpers\n\n\ndef f(v):  # the helper\n")],
        helpers="""
        def f(v):
            return v + 1
        """,
        steps="""
        from conveyor import step
        from .helpers import f

        @step
        def s(x: int) -> int:
            return f(x)
        """,
    ),
    case(
        "new-unrelated-function-added",
        False,
        [
            (
                "steps.py",
                "from conveyor import step\n",
                "from conveyor import step\n\ndef added():\n    return 1\n",
            )
        ],
        steps="""
        from conveyor import step

        @step
        def s(x: int) -> int:
            return x * 2
        """,
    ),
    case(
        "module-the-step-does-not-use",
        False,
        [("other.py", "VALUE = 1", "VALUE = 2")],
        other="VALUE = 1\n",
        steps="""
        from conveyor import step

        @step
        def s(x: int) -> int:
            return x - 1
        """,
    ),
    case(
        "formatting-of-a-used-value",
        False,
        [
            (
                "steps.py",
                'CONFIG = {"a": 1, "b": [1, 2]}',
                'CONFIG = {\n    "a": 1,\n    "b": [1, 2],  # note\n}',
            )
        ],
        steps="""
        from conveyor import step
        CONFIG = {"a": 1, "b": [1, 2]}

        @step
        def s(x: int) -> int:
            return x + CONFIG["a"] + len(CONFIG["b"])
        """,
    ),
    case(
        "unrelated-class-in-same-module",
        False,
        [("steps.py", "return 'unused'", "return 'still unused'")],
        steps="""
        from conveyor import step

        class Unused:
            def method(self):
                return 'unused'

        @step
        def s(x: int) -> int:
            return x + 3
        """,
    ),
    case(
        "formatting-in-a-fallback-module",
        False,
        [("steps.py", "K = 1\n", "# the constant\nK = (\n    1\n)\n")],
        steps="""
        from conveyor import step
        K = 1

        @step
        def s(x: int) -> int:
            return x + globals()["K"]
        """,
    ),
    case(
        "comment-in-a-used-class",
        False,
        [("steps.py", "return x * self.weight", "return x * self.weight  # scaled")],
        steps="""
        from conveyor import step

        class Scorer:
            def __init__(self, weight):
                self.weight = weight

            def score(self, x):
                return x * self.weight

        SCORER = Scorer(2)

        @step
        def s(x: int) -> int:
            return SCORER.score(x)
        """,
    ),
]

# A representative subset for the executors that run steps in other processes.
REMOTE = [
    "dict-imported-from-other-module",
    "module-instance-method-body",
    "partial-arguments",
    "wraps-decorator-body",
    "comment-in-step",
    "unrelated-function-in-same-module",
    "dispatch-table-of-callables",
    "helper-two-modules-away",
    "pipeline-literal-list-vs-tuple",
    "formatting-of-step",
]
