"""The layout is the architecture: layers as folders, checked by import-linter, small modules, no private names
borrowed across modules."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("audionorm_lab", "bench")


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def test_every_layer_contract_holds_imports_inside_functions_included():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
    contracts = done.stdout.count(" KEPT")
    assert contracts >= 6  # two layers contracts, the library never imports the harness, three independences


def test_the_core_is_in_layer_folders_with_few_modules_at_its_top():
    top = [p.name for p in (ROOT / "audionorm_lab").glob("*.py")]
    assert len(top) <= 8, top
    for layer in ("dsp", "media", "stream", "service"):
        init = ROOT / "audionorm_lab" / layer / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{layer}/__init__.py says what the layer is for"


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for package in PACKAGES for p in modules(package)
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


#: The C and C++ kernels are modules named privately; importing one (to test it against numpy) is no borrowed name.
KERNELS = {p.stem for p in (ROOT / "audionorm_lab").rglob("_*.c*") if p.suffix in (".c", ".cpp")}


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") and alias.name not in KERNELS:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}")
    return found


def test_no_module_imports_another_s_private_name():
    paths = [p for package in (*PACKAGES, "tests") for p in modules(package)]
    found = [hit for p in paths for hit in _private_imports(p)]
    assert not found, found


def test_the_library_imports_without_celery_and_the_worker_finds_its_app():
    """``import audionorm_lab`` needs no ``service`` extra; ``celery -A audionorm_lab.service`` still finds the app."""
    probe = ("import sys, audionorm_lab; assert 'celery' not in sys.modules, 'celery imported'; "
             "import audionorm_lab.service as s; assert 'celery' not in sys.modules; "
             "print(s.app.main, s.normalize_audio.name)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["audionorm_lab", "audionorm.normalize_audio"]
