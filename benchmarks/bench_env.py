"""The benchmark's own environment: work folder, client packages, the original's virtualenv.

Everything the benchmark installs goes under ``benchmarks/.work/`` (gitignored):

* ``site/``: client-side packages (aiohttp, orjson, matplotlib, py-spy) installed with
  ``pip install --target`` for the interpreter running the benchmark, and appended to
  ``sys.path``, so the environment under test (``sys.executable``'s) is never modified.
* ``original-venv/``: ``jupyter_http_over_ws==0.0.8`` on ``notebook<7`` and
  ``tornado<6.5``, the newest stack where the original still runs.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
SITE_DIR = WORK_DIR / "site"
ORIGINAL_VENV = WORK_DIR / "original-venv"

#: Client-side packages, imported by the benchmark process only.
CLIENT_PACKAGES = {
    "aiohttp": "aiohttp>=3.11",
    "orjson": "orjson",
    # SIMD base64: the client decodes every legacy frame; with binascii (about 4 ms per
    # MiB here) the client, not the server, would limit legacy-framing downloads.
    "pybase64": "pybase64",
    "matplotlib": "matplotlib",
}
PROFILER_PACKAGE = "py-spy"

#: The original extension and the newest stack it runs on (it imports ``notebook.base``,
#: gone in notebook 7, and builds a ``Cookie`` header that tornado 6.5 refuses).
ORIGINAL_REQUIREMENTS = [
    "jupyter_http_over_ws==0.0.8",
    "notebook<7",
    "tornado<6.5",
]


def _pip_install_target(requirements: list[str]) -> None:
    SITE_DIR.mkdir(parents=True, exist_ok=True)
    print(f"[setup] pip install --target {SITE_DIR} {' '.join(requirements)}", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(SITE_DIR),
            *requirements,
        ],
        check=True,
    )
    importlib.invalidate_caches()


def ensure_client_packages(*, need_plot: bool = True) -> None:
    """Make aiohttp, orjson (and matplotlib) importable, installing them into ``site/``."""
    if str(SITE_DIR) not in sys.path:
        # Appended: the environment under test keeps precedence for anything it has.
        sys.path.append(str(SITE_DIR))
    wanted = dict(CLIENT_PACKAGES)
    if not need_plot:
        wanted.pop("matplotlib")
    missing = []
    for module, requirement in wanted.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(requirement)
    if missing:
        _pip_install_target(missing)


def py_spy_path(*, install: bool = True) -> Path | None:
    """The ``py-spy`` executable, installed into ``site/`` if needed."""
    candidate = SITE_DIR / "bin" / "py-spy"
    if not candidate.exists() and install:
        _pip_install_target([PROFILER_PACKAGE])
    return candidate if candidate.exists() else None


def original_python() -> Path:
    return ORIGINAL_VENV / "bin" / "python"


def original_available() -> bool:
    """Whether the original's virtualenv is set up (see :func:`ensure_original_venv`)."""
    return (ORIGINAL_VENV / ".bench-ready").exists()


def ensure_original_venv() -> None:
    """Create ``original-venv`` with the original extension enabled, once."""
    if original_available():
        return
    print(f"[setup] creating {ORIGINAL_VENV} for jupyter_http_over_ws 0.0.8", flush=True)
    if not original_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(ORIGINAL_VENV)], check=True)
    pip = [str(original_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *ORIGINAL_REQUIREMENTS], check=True)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(WORK_DIR / "original-user-config"))
    subprocess.run(
        [
            str(ORIGINAL_VENV / "bin" / "jupyter"),
            "serverextension",
            "enable",
            "--py",
            "jupyter_http_over_ws",
            "--sys-prefix",
        ],
        check=True,
        env=env,
    )
    (ORIGINAL_VENV / ".bench-ready").write_text("ok\n")


def _versions_of(python: Path, modules: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"for name in {modules!r}:\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: out[name] = None\n"
        "print(json.dumps(out))\n"
    )
    try:
        result = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(json.loads(result.stdout))


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, object]:
    """CPU, memory, OS and the versions of everything measured."""
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    stack = [
        "jupyter_server",
        "tornado",
        "jupyter-http-over-ws",
        "notebook",
        "ipykernel",
        "jupyter_client",
        "pyzmq",
        "orjson",
        "aiohttp",
    ]
    info: dict[str, object] = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem_total,
        "ours_env": _versions_of(Path(sys.executable), stack),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "jupyter_http_over_ws")),
    }
    try:
        import aiohttp

        info["client"] = {"aiohttp": aiohttp.__version__, "python": platform.python_version()}
    except ImportError:
        pass
    if original_available():
        original_stack = [name for name in stack if name != "jupyter-http-over-ws"]
        info["original_env"] = _versions_of(
            original_python(), ["jupyter_http_over_ws", *original_stack]
        )
    return info
