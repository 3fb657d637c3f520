"""Notebook 02 in a real browser: JupyterLab from .venv, driven by Debian's headless Chromium through selenium.

Run All, the sliders render, a slider step changes the prediction it drives, no cell errs. Every wait is
on a condition, never a sleep; the server is stopped by its own process id, its kernels with it.
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from bench.measuring.processes import free_port
from conftest import CHROMEDRIVER, CHROMIUM
from data.fetch_samples import make_sample

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="chromium and chromium-driver are not installed (./lab test installs them)")


def _wait(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a loopback port with a token, serving a quick copy of notebook 02."""
    sample = make_sample(40.0, "mp3", out=tmp_path / "samples", speech="builtin")
    values = tmp_path / "values.json"
    notebook = tmp_path / "tune.ipynb"
    subprocess.run([sys.executable, "-m", "papermill", "--prepare-only", str(ROOT / "notebooks" /
                    "02_tune_chunk_and_overlap.ipynb"), str(notebook), "-p", "input_path", str(sample),
                    "-p", "minutes", "0.5", "-p", "boundary_seconds", "10.0", "-p", "memory_limit", "400M",
                    "-p", "out_dir", str(tmp_path / "out"), "-p", "values_path", str(values)],
                   check=True, capture_output=True, cwd=ROOT)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell in the DOM (no windowing), so what the test reads is the whole notebook
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", "--allow-root", f"--ServerApp.root_dir={tmp_path}",
         f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"],
        stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "AUDIONORM_LAB_ROOT": str(ROOT)})

    def ready():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return server.poll() is not None and pytest.fail((tmp_path / "lab.log").read_text()[-2000:])

    try:
        _wait(ready, 120, "JupyterLab to answer /api/status")
        yield {"url": f"http://127.0.0.1:{port}/lab/tree/tune.ipynb?token={token}", "values": values,
               "notebook": notebook, "server": server}
    finally:
        tree = [server.pid] + [p.pid for p in psutil.Process(server.pid).children(recursive=True)] \
            if server.poll() is None else [server.pid]
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        for pid in tree[1:]:  # its kernels went with it
            _wait(lambda pid=pid: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", 30,
                  f"kernel {pid} to exit")


def test_notebook_02_runs_in_jupyterlab_and_its_sliders_drive_the_prediction(lab, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.monotonic()
    find = browser.find_elements
    browser.get(lab["url"])
    indicator = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator"

    def accept_dialogs() -> bool:
        """JupyterLab may ask which kernel to use ("Select Kernel"): take the one it proposes. True if none was open."""
        dialogs = find(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept")
        for accept in dialogs:
            accept.click()
        return not dialogs

    def kernel_idle() -> bool:  # the status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected
        return accept_dialogs() and any("| Idle" in e.text for e in find(By.CSS_SELECTOR, ".jp-StatusBar-TextItem"))

    def run_all() -> None:
        _wait(lambda: [e for e in find(By.CSS_SELECTOR, ".lm-MenuBar-item") if e.text == "Run"], 30,
              "the Run menu")[0].click()
        _wait(lambda: [e for e in find(By.CSS_SELECTOR, '.lm-Menu-item[data-command="runmenu:run-all"]')
                       if e.is_displayed()], 30, "Run All")[0].click()

    _wait(kernel_idle, 120, "the kernel to be idle")
    for _attempt in range(3):  # a kernel dialog that interrupts Run All: accept it, wait, run all again
        run_all()
        started_or_asked = _wait(lambda: "asked" if find(By.CSS_SELECTOR, ".jp-Dialog") else any(
            "[*]" in e.text for e in find(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")), 60, "Run All to start")
        if started_or_asked is True:
            break
        _wait(kernel_idle, 120, "the kernel to be idle after its dialog")
    try:
        # the last cell records the values: its file appears only when every cell before it ran
        _wait(lambda: lab["values"].exists() or find(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type="
                                                                       "'application/vnd.jupyter.stderr']"),
              600, "the notebook's last cell")
    finally:
        browser.save_screenshot(str(tmp_path / "after-run-all.png"))
    _wait(lambda: any(e.get_attribute("data-status") == "idle" for e in find(By.CSS_SELECTOR, indicator)), 120,
          "the kernel to be idle again")
    prompts = [e.text for e in find(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
    assert prompts and all(p.startswith("[") and "*" not in p and p != "[ ]:" for p in prompts), prompts
    stderr = [e.text for e in find(By.CSS_SELECTOR, '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')]
    outputs = " ".join(e.text for e in find(By.CSS_SELECTOR, ".jp-OutputArea-output"))
    assert "Traceback" not in outputs and not [t for t in stderr if "Error" in t or "Traceback" in t], stderr
    values = json.loads(lab["values"].read_text())
    assert values["interactive"] is True, "a kernel started by JupyterLab draws sliders"
    sliders = _wait(lambda: find(By.CSS_SELECTOR, ".widget-slider"), 30, "the sliders")
    assert len(sliders) == 3
    labels = [e.text for e in find(By.CSS_SELECTOR, ".widget-slider .widget-label")]
    assert labels == ["chunk length (s)", "overlap (s)", "workers"], labels  # whole, not cut
    prediction = find(By.CSS_SELECTOR, ".widget-output")[0]
    before = prediction.text
    assert "chunk" in before and "budget" in before, before
    handle = sliders[0].find_element(By.CSS_SELECTOR, ".noUi-handle")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", handle)
    handle.click()
    # step away from the end the recommendation sits at: the tuner may well pick the longest chunk, the slider's max
    at_max = float(handle.get_attribute("aria-valuenow")) >= float(handle.get_attribute("aria-valuemax"))
    for _ in range(10):
        handle.send_keys(Keys.ARROW_LEFT if at_max else Keys.ARROW_RIGHT)
    after = _wait(lambda: prediction.text if prediction.text not in ("", before) else None, 30,
                  "the prediction to change")
    assert "chunk" in after and after != before
    browser.save_screenshot(str(tmp_path / "notebook02.png"))
    assert (tmp_path / "notebook02.png").stat().st_size > 10_000
    print(f"browser run: {time.monotonic() - started:.1f} s")
