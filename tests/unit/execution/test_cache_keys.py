"""Cache keys beyond code edits on disk: notebooks redefining code in one process, declared
external inputs (env, files, packages), `cache_packages`, typed parameters, fallbacks."""

from __future__ import annotations

import os
import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import pipeline, step
from conveyor._internal.hashing import typed_digest
from conveyor.config import Settings
from conveyor.exceptions import PipelineDefinitionError
from conveyor.execution.fingerprint import ProjectScope, fingerprint_step
from conveyor.execution.orchestrator import run_pipeline
from conveyor.stores.metadata import open_metadata_store
from tests.conftest import make_settings


class Notebook:
    """A module with no file, filled cell by cell with exec, like a Jupyter kernel's."""

    def __init__(self) -> None:
        self.name = f"nb_{uuid.uuid4().hex[:8]}"
        self.module = types.ModuleType(self.name)
        sys.modules[self.name] = self.module
        self.cells = 0

    def run_cell(self, source: str) -> None:
        self.cells += 1
        code = compile(textwrap.dedent(source), f"<cell-{self.cells}>", "exec")
        exec(code, self.module.__dict__)

    def __getitem__(self, name: str) -> Any:
        return self.module.__dict__[name]


@pytest.fixture
def notebook() -> Iterator[Notebook]:
    book = Notebook()
    book.run_cell("from conveyor import pipeline, step")
    yield book
    del sys.modules[book.name]


def hit(run: Any, name: str = "s") -> bool:
    return bool(run.step(name)["cache_hit"])


def components(settings: Settings, run: Any, name: str = "s") -> list[dict[str, Any]]:
    store = open_metadata_store(settings.db_url)
    key = run.step(name)["cache_key"]
    return store.cache_key_components([key])[key]


CELLS = """
def helper(v):
    return v + 1

@step
def s(x: int) -> int:
    return helper(x)

@pipeline
def p():
    return s(3)
"""


def test_notebook_redefining_a_helper_reruns_the_step(
    notebook: Notebook, settings: Settings
) -> None:
    notebook.run_cell(CELLS)
    assert run_pipeline(notebook["p"], settings=settings, executor="inline").output() == 4
    notebook.run_cell("def helper(v):\n    return v + 10\n")
    again = run_pipeline(notebook["p"], settings=settings, executor="inline")
    assert not hit(again)
    assert again.output() == 13


def test_notebook_running_the_same_cell_again_is_a_hit(
    notebook: Notebook, settings: Settings
) -> None:
    notebook.run_cell(CELLS)
    run_pipeline(notebook["p"], settings=settings, executor="inline")
    notebook.run_cell(CELLS)  # new function objects, same code
    assert hit(run_pipeline(notebook["p"], settings=settings, executor="inline"))


def test_notebook_mutating_a_dict_in_place_reruns(notebook: Notebook, settings: Settings) -> None:
    notebook.run_cell(
        """
        CONFIG = {"k": 2}

        @step
        def s(x: int) -> int:
            return x * CONFIG["k"]

        @pipeline
        def p():
            return s(3)
        """
    )
    assert run_pipeline(notebook["p"], settings=settings, executor="inline").output() == 6
    notebook.run_cell('CONFIG["k"] = 5')
    again = run_pipeline(notebook["p"], settings=settings, executor="inline")
    assert not hit(again) and again.output() == 15


def test_notebook_redefining_a_class_reruns(notebook: Notebook, settings: Settings) -> None:
    source = """
        class Model:
            def predict(self, x):
                return x + 1

        @step
        def s(x: int) -> int:
            return Model().predict(x)

        @pipeline
        def p():
            return s(3)
        """
    notebook.run_cell(source)
    run_pipeline(notebook["p"], settings=settings, executor="inline")
    notebook.run_cell("class Model:\n    def predict(self, x):\n        return x - 1\n")
    again = run_pipeline(notebook["p"], settings=settings, executor="inline")
    assert not hit(again) and again.output() == 2


def test_fingerprint_is_never_reused_across_a_redefinition(
    notebook: Notebook, tmp_path: Path
) -> None:
    notebook.run_cell(CELLS)
    scope = ProjectScope.create(tmp_path)
    before = fingerprint_step(notebook["s"], scope).digest
    assert fingerprint_step(notebook["s"], scope).digest == before
    notebook.run_cell("def helper(v):\n    return v + 2\n")
    assert fingerprint_step(notebook["s"], scope).digest != before


# ---------------------------------------------------------------------------- declared inputs
@step(env=["CONVEYOR_TEST_API_URL"])
def reads_env(x: int) -> str:
    return f"{os.environ.get('CONVEYOR_TEST_API_URL')}/{x}"


@pipeline
def env_pipeline():
    return reads_env(1)


def test_declared_env_var_joins_the_key_and_only_its_hash_is_stored(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_TEST_API_URL", "https://secret-host.example")
    first = run_pipeline(env_pipeline, settings=settings, executor="inline")
    assert hit(run_pipeline(env_pipeline, settings=settings, executor="inline"), "reads_env")
    monkeypatch.setenv("CONVEYOR_TEST_API_URL", "https://other.example")
    changed = run_pipeline(env_pipeline, settings=settings, executor="inline")
    assert not hit(changed, "reads_env")
    assert changed.output() == "https://other.example/1"
    monkeypatch.delenv("CONVEYOR_TEST_API_URL")
    assert not hit(run_pipeline(env_pipeline, settings=settings, executor="inline"), "reads_env")
    stored = components(settings, first, "reads_env")
    env = [c for c in stored if c["kind"] == "env"]
    assert env and env[0]["name"] == "CONVEYOR_TEST_API_URL" and env[0]["value"] == "set"
    assert "secret-host" not in repr(stored)


def test_declared_file_content_joins_the_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    data = tmp_path / "data" / "raw.csv"
    data.parent.mkdir()
    data.write_text("a,b\n1,2\n")

    @step(files=["data/raw.csv"])
    def load(x: int) -> str:
        return (tmp_path / "data" / "raw.csv").read_text() * x

    @pipeline
    def p():
        return load(1)

    run_pipeline(p, settings=settings, executor="inline")
    os.utime(data)  # touched, same content
    assert hit(run_pipeline(p, settings=settings, executor="inline"), "load")
    data.write_text("a,b\n1,3\n")
    changed = run_pipeline(p, settings=settings, executor="inline")
    assert not hit(changed, "load") and changed.output() == "a,b\n1,3\n"
    data.unlink()
    with pytest.raises(Exception, match=r"raw\.csv"):
        run_pipeline(p, settings=settings, executor="inline")


def test_declared_folder_content_joins_the_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.txt").write_text("1")

    @step(files=[str(folder)])
    def count(x: int) -> int:
        return len(list(folder.iterdir())) * x

    @pipeline
    def p():
        return count(1)

    run_pipeline(p, settings=settings, executor="inline")
    assert hit(run_pipeline(p, settings=settings, executor="inline"), "count")
    (folder / "b.txt").write_text("2")
    again = run_pipeline(p, settings=settings, executor="inline")
    assert not hit(again, "count") and again.output() == 2


def fake_distribution(site: Path, name: str, version: str) -> None:
    for old in site.glob(f"{name}-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    (site / f"{name}.py").write_text("def value():\n    return 1\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "fake" / "site-packages"  # library code, as installed packages are
    folder.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_declared_package_version_joins_the_key(site: Path, tmp_path: Path) -> None:
    name = f"fakedist{uuid.uuid4().hex[:6]}"
    fake_distribution(site, name, "1.0")
    settings = make_settings(tmp_path / "p")

    @step(packages=[name])
    def uses(x: int) -> int:
        return x

    @pipeline
    def p():
        return uses(1)

    first = run_pipeline(p, settings=settings, executor="inline")
    assert hit(run_pipeline(p, settings=settings, executor="inline"), "uses")
    fake_distribution(site, name, "2.0")
    assert not hit(run_pipeline(p, settings=settings, executor="inline"), "uses")
    package = [c for c in components(settings, first, "uses") if c["kind"] == "package"]
    assert package == [
        {"kind": "package", "name": name, "hash": package[0]["hash"], "value": "1.0"}
    ]


def test_cache_packages_adds_the_versions_of_imported_distributions(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"fakelib{uuid.uuid4().hex[:6]}"
    fake_distribution(site, name, "1.0")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    project = tmp_path / "proj"
    (project / "steps").mkdir(parents=True)
    (project / "steps" / "__init__.py").write_text("")
    package = f"steps_{uuid.uuid4().hex[:6]}"
    (project / package).mkdir()
    (project / package / "__init__.py").write_text("")
    (project / package / "mod.py").write_text(
        textwrap.dedent(
            f"""
            import {name}
            from conveyor import pipeline, step

            @step
            def s(x: int) -> int:
                return x + {name}.value()

            @pipeline
            def p():
                return s(1)
            """
        )
    )
    monkeypatch.syspath_prepend(str(project))
    import importlib

    module = importlib.import_module(f"{package}.mod")
    plain = make_settings(project)
    pinned = make_settings(project / "pinned", cache_packages=True)
    for current in (plain, pinned):
        run_pipeline(module.p, settings=current, executor="inline")
    fake_distribution(site, name, "1.1")
    # Without cache_packages library versions are not part of the key (documented).
    assert hit(run_pipeline(module.p, settings=plain, executor="inline"))
    assert not hit(run_pipeline(module.p, settings=pinned, executor="inline"))
    libraries = [
        c
        for c in components(plain, run_pipeline(module.p, settings=plain))
        if c["kind"] == "library"
    ]
    assert [c["name"] for c in libraries] == [name]


def test_bad_declarations_name_the_setting_and_the_fix() -> None:
    with pytest.raises(
        PipelineDefinitionError, match=r"'env' parameter .* list of non-empty strings"
    ):
        step(env="API_URL")  # type: ignore[arg-type]
    with pytest.raises(PipelineDefinitionError, match="'files'"):
        step(files=[""])
    with pytest.raises(PipelineDefinitionError, match="'packages'"):
        step(packages=[3])  # type: ignore[list-item]


# ---------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1, 2], (1, 2)),
        ({1: "x"}, {"1": "x"}),
        (True, 1),
        (1, 1.0),
        (0.0, -0.0),
        ({"a": [1]}, {"a": (1,)}),
    ],
)
def test_typed_parameters_that_differ_in_type_get_different_keys(a: Any, b: Any) -> None:
    assert typed_digest(a) != typed_digest(b)


def test_typed_parameters_equal_values_equal_keys() -> None:
    assert typed_digest({"b", "a", "c"}) == typed_digest({"c", "b", "a"})
    assert typed_digest({"k": [1, (2, 3)]}) == typed_digest({"k": [1, (2, 3)]})


# ---------------------------------------------------------------------------- fallbacks
def test_dynamic_lookup_is_recorded_as_the_reason_for_a_whole_module_hash(
    notebook: Notebook, settings: Settings
) -> None:
    notebook.run_cell(
        """
        K = 1

        @step
        def s(x: int) -> int:
            return x + globals()["K"]

        @pipeline
        def p():
            return s(1)
        """
    )
    run = run_pipeline(notebook["p"], settings=settings, executor="inline")
    module = [c for c in components(settings, run) if c["kind"] == "module"]
    assert module and module[0]["name"] == notebook.name
    assert "globals()" in module[0]["note"]


def test_unpicklable_value_without_source_makes_the_step_rerun_every_time(
    notebook: Notebook, settings: Settings
) -> None:
    notebook.run_cell(
        """
        import threading
        LOCK = threading.Lock()

        @step
        def s(x: int) -> int:
            with LOCK:
                return x

        @pipeline
        def p():
            return s(1)
        """
    )
    first = run_pipeline(notebook["p"], settings=settings, executor="inline")
    assert not hit(run_pipeline(notebook["p"], settings=settings, executor="inline"))
    value = [c for c in components(settings, first) if c["name"].endswith(":LOCK")]
    assert "re-runs every time" in value[0]["note"]


def test_value_over_the_size_cap_hashes_its_module_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    package = f"big_{uuid.uuid4().hex[:6]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(
        "from conveyor import step\nBLOB = bytearray(64)\n\n"
        "@step\ndef s(x: int) -> int:\n    return len(BLOB) + x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module(package)
    scope = ProjectScope.create(tmp_path)
    small = fingerprint_step(module.s, scope, max_bytes=16)
    value = next(c for c in small.components if c.name.endswith(":BLOB"))
    assert "too large" in value.note and "source of module" in value.note
    full = fingerprint_step(module.s, scope)
    module.BLOB[0] = 1  # by content under the cap: the change counts
    assert fingerprint_step(module.s, scope).digest != full.digest


# ---------------------------------------------------------------------------- project code
def test_project_packages_are_hashed_even_under_site_packages(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    name = f"projlib{uuid.uuid4().hex[:6]}"
    (site / name).mkdir()
    (site / name / "__init__.py").write_text("def helper(v):\n    return v + 1\n")
    notebook = Notebook()
    try:
        notebook.run_cell(
            f"""
            from conveyor import pipeline, step
            import {name}

            @step
            def s(x: int) -> int:
                return {name}.helper(x)

            @pipeline
            def p():
                return s(1)
            """
        )
        library = make_settings(tmp_path / "a")
        project = make_settings(tmp_path / "b", project_packages=(name,))
        for current in (library, project):
            run_pipeline(notebook["p"], settings=current, executor="inline")
        (site / name / "__init__.py").write_text("def helper(v):\n    return v + 2\n")
        del sys.modules[name]
        notebook.run_cell(f"import {name}")
        # Under site-packages and not declared: library code, named but not hashed.
        assert hit(run_pipeline(notebook["p"], settings=library, executor="inline"))
        changed = run_pipeline(notebook["p"], settings=project, executor="inline")
        assert not hit(changed) and changed.output() == 3
    finally:
        del sys.modules[notebook.name]
        sys.modules.pop(name, None)


def test_library_objects_are_hashed_by_content_not_replaced_by_the_source(
    notebook: Notebook, tmp_path: Path
) -> None:
    notebook.run_cell(
        """
        import collections, datetime, fractions

        def helper(v):
            return v

        TABLE = collections.OrderedDict(a=fractions.Fraction(1, 3), when=datetime.date(2024, 1, 1))
        CALLBACKS = collections.OrderedDict(first=helper)

        @step
        def s(x: int) -> int:
            return x + len(TABLE) + len(CALLBACKS)
        """
    )
    scope = ProjectScope.create(tmp_path)
    before = fingerprint_step(notebook["s"], scope)
    values = {c.name.partition(":")[2]: c for c in before.components if c.kind == "value"}
    assert values["TABLE"].note == "" and values["CALLBACKS"].note == ""
    # A function inside a library container is followed by its code.
    assert any(c.kind == "function" and c.name.endswith(":helper") for c in before.components)
    notebook.run_cell(
        "def helper(v):\n    return v + 1\n\n"
        "CALLBACKS['first'] = helper\nTABLE['a'] = fractions.Fraction(2, 3)\n"
    )
    after = fingerprint_step(notebook["s"], scope)
    changed = {c.name for c in set(after.components) - set(before.components)}
    assert {f"{notebook.name}:TABLE", f"{notebook.name}:helper"} <= changed


def test_library_files_and_files_outside_every_library_are_told_apart(tmp_path: Path) -> None:
    import json
    import sysconfig

    import pytest as installed

    scope = ProjectScope.create(tmp_path / "project")
    assert not scope.is_project_file(json.__file__)  # the standard library
    assert not scope.is_project_file(installed.__file__)  # site-packages
    assert scope.is_project_file(str(tmp_path / "project" / "steps.py"))
    # Outside the root and every library folder (a helper checkout in /opt): hashed.
    elsewhere = tmp_path / "opt" / "helpers.py"
    assert scope.is_project_file(str(elsewhere))
    stdlib = sysconfig.get_paths()["stdlib"]
    assert not scope.is_project_file(os.path.join(stdlib, "not_a_module_yet.py"))
