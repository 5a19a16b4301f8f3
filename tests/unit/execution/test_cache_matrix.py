"""The cache promise, case by case: edit code on disk, import it fresh, run again.

A change to anything the step's output depends on must re-run it; an edit that cannot
change the output (comments, formatting, unrelated code) must be a cache hit. Every run's
output is compared with what the current code computes when called directly, so a stale
hit cannot pass. The whole matrix runs on the inline executor; a representative subset on
the processes executor and on Dask, and on a project installed under site-packages.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .cache_cases import CASES, REMOTE, Case
from .cache_project import CacheProject

BY_ID = {c.id: c for c in CASES}
MakeProject = Callable[..., CacheProject]


@pytest.fixture
def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeProject]:
    # Fresh imports must compile the edited source, never a .pyc from the same second.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    made: list[CacheProject] = []

    def make(files: dict[str, str], **options: Any) -> CacheProject:
        project = CacheProject(tmp_path / f"p{len(made)}", files, **options)
        monkeypatch.syspath_prepend(str(project.base))
        made.append(project)
        return project

    yield make
    for project in made:
        project.close()


def step_hit(run: Any, name: str = "s") -> bool:
    return bool(run.step(name)["cache_hit"])


def check_case(project: CacheProject, case: Case, executor: Any) -> None:
    first = project.run(executor)
    assert first.output() == project.direct()
    assert step_hit(project.run(executor)), "an unchanged project must be a cache hit"
    for name, old, new in case.edits:
        project.edit(name, old, new)
    after = project.run(executor)
    assert step_hit(after) is (not case.rerun), (
        f"{case.id}: expected {'a re-run' if case.rerun else 'a cache hit'}"
    )
    assert after.output() == project.direct()


def test_the_matrix_has_at_least_forty_cases_of_both_kinds() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert sum(c.rerun for c in CASES) >= 25 and sum(not c.rerun for c in CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_code_change_inline(make_project: MakeProject, case: Case) -> None:
    check_case(make_project(case.all_files()), case, "inline")


INSTALLED = [
    "dict-imported-from-other-module",
    "helper-two-modules-away",
    "method-inherited-from-base-in-other-module",
    "comment-in-step",
]


@pytest.mark.parametrize("case_id", INSTALLED)
def test_code_change_in_a_project_installed_under_site_packages(
    make_project: MakeProject, case_id: str
) -> None:
    case = BY_ID[case_id]
    project = make_project(case.all_files(), installed=True)
    assert "site-packages" in project.folder.parts
    check_case(project, case, "inline")


@pytest.mark.slow
@pytest.mark.parametrize("case_id", REMOTE)
def test_code_change_on_the_processes_executor(make_project: MakeProject, case_id: str) -> None:
    case = BY_ID[case_id]
    project = make_project(case.all_files())
    project.ship_by_value()
    check_case(project, case, "processes:2")


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    from conveyor.execution.dask import DaskExecutor

    executor = DaskExecutor(n_workers=2)
    yield executor
    executor.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("case_id", REMOTE)
def test_code_change_on_dask(make_project: MakeProject, dask_cluster: Any, case_id: str) -> None:
    case = BY_ID[case_id]
    project = make_project(case.all_files())
    project.ship_by_value()
    check_case(project, case, dask_cluster)
