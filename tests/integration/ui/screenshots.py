"""Screenshots of every page kind for docs/ui.md.

    .venv/bin/python -m tests.integration.ui.screenshots docs/ui

Builds the same store as the browser tests (demo + `tests.ui_store.fill`) in a temporary
folder, starts `conveyor ui` on it and saves one PNG per page kind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import make_settings
from tests.integration.ui.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CONVEYOR,
    Site,
    free_port,
    start,
    stop,
    wait_for,
)
from tests.integration.ui.test_browser import page_kinds
from tests.ui_store import fill

SHOTS = {
    "runs": "runs",
    "run": "run",
    "step": "step",
    "compare": "compare",
    "lineage": "lineage",
    "dataset-version": "dataset",
    "model": "model",
    "model-card": "model-card",
    "monitor": "monitor",
    "study": "tuning",
}


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env = {**os.environ, "CONVEYOR_DB_URL": "", "CONVEYOR_ARTIFACT_URL": ""}
        subprocess.run(
            [CONVEYOR, "demo", "--path", str(root)],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        settings = make_settings(root)
        site = Site("", root, fill(settings, root, models=False), settings)
        port = free_port()
        server = start([CONVEYOR, "ui", "--port", str(port)], root)
        site.url = f"http://127.0.0.1:{port}"
        try:
            wait_for(site.url + "/runs", server)
            kinds = page_kinds(site)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                tab = browser.new_page(viewport={"width": 1200, "height": 760})
                # The runs list as a leaderboard: one pipeline, sorted by a metric.
                kinds["runs"] = "/runs?pipeline=train&sort=-metric%3Aaccuracy"
                for kind, name in SHOTS.items():
                    tab.goto(site.url + kinds[kind])
                    tab.screenshot(path=str(out / f"{name}.png"))
                    print(out / f"{name}.png")
                browser.close()
        finally:
            stop(server)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/ui"))
