"""The pure core imports no Kafka, Faust, FastAPI or Redis client: dependencies point inward."""

import subprocess
import sys

FORBIDDEN = ("faust", "aiokafka", "fastapi", "starlette", "redis", "uvicorn", "typer", "mode")


def test_core_imports_no_shell_library() -> None:
    code = (
        "import sys, pkgutil, importlib, cityscreen\n"
        "for m in pkgutil.walk_packages(cityscreen.__path__, 'cityscreen.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(','.join(sorted(n for n in {FORBIDDEN!r} if n in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the core pulled in: {out.stdout.strip()}"
