"""Start, health-check and stop a local OpenAI-compatible server process on loopback.

Shared by the engine launchers (llama.cpp, vLLM): ``ServerProcess`` runs the child,
``LaunchedBackend`` is the OpenAI backend over a server it started. The child gets
PR_SET_PDEATHSIG so it dies with us even on kill -9, is stopped on ``close()``, at
interpreter exit, and its log tail is shown if it crashes.
"""
from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from ..errors import BackendError
from ..types import Completion, GenRequest
from .openai import OpenAIBackend


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec
    os.setsid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


class ServerProcess:
    """A server subprocess bound to 127.0.0.1:<port> with a health endpoint."""

    def __init__(self, argv: Sequence[str], port: int, health_path: str = "/health", host: str = "127.0.0.1",
                 startup_timeout_s: float = 300.0, env: dict | None = None, name: str = "server"):
        self.argv = list(argv)
        self.host, self.port = host, port
        self.health_url = f"http://{host}:{port}{health_path}"
        self.base_url = f"http://{host}:{port}/v1"
        self.startup_timeout_s = startup_timeout_s
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"s2distill-{name}-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **(env or {})}, preexec_fn=_die_with_parent)
        except FileNotFoundError:
            self._log.close()
            raise BackendError(f"cannot start {name}: '{self.argv[0]}' not found") from None
        atexit.register(self.close)
        self._wait_healthy()

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    tail = self.log_tail()
                    self.close()
                    raise BackendError(f"{self.name} exited with code {self.proc.returncode} during start-up:\n{tail}")
                try:
                    if client.get(self.health_url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
        self.close()
        raise BackendError(f"{self.name} not healthy after {self.startup_timeout_s:.0f}s; log tail:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BackendError(f"{self.name} died (exit code {self.proc.returncode}); log tail:\n{self.log_tail()}")

    def close(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        if hasattr(self, "_log") and not self._log.closed:
            self._log.close()
        atexit.unregister(self.close)


def which_or(names: Sequence[str], extra_dirs: Sequence[Path] = ()) -> str | None:
    for d in extra_dirs:
        for n in names:
            p = Path(d) / n
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    for n in names:
        found = shutil.which(n)
        if found:
            return found
    return None


def find_executable(env_var: str, names: Sequence[str], fix: str, extra_dirs: Sequence[Path] = (),
                    error: type[Exception] = BackendError) -> str:
    """``$env_var`` if set, else the first of ``names`` in ``extra_dirs`` or on PATH; ``error`` if none."""
    env = os.environ.get(env_var)
    if env:
        if not Path(env).is_file():
            raise error(f"{env_var}={env} does not exist; fix: point it at {names[0]}")
        if not os.access(env, os.X_OK):
            raise error(f"{env_var}={env} is not executable; fix: chmod +x {env}")
        return env
    found = which_or(names, extra_dirs)
    if not found:
        raise error(f"{names[0]} not found; fix: {fix}")
    return found


def file_id(path: str | Path) -> str:
    """Cheap identity of a weights file: name, size and a hash of its first and last MiB."""
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256(f"{p.name}:{st.st_size}".encode())
    with open(p, "rb") as fh:
        h.update(fh.read(1 << 20))
        if st.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))
    return f"{p.name}:{h.hexdigest()[:16]}"


def path_id(path: str | Path) -> str:
    """``file_id`` of a file, or of every file under a directory (an HF model or adapter dir)."""
    p = Path(path)
    if p.is_file():
        return file_id(p)
    files = sorted(f for f in p.rglob("*") if f.is_file() and not any(x.startswith(".") for x in f.relative_to(p).parts))
    if not files:
        raise BackendError(f"no files under {p}")
    h = hashlib.sha256("\n".join(f"{f.relative_to(p)}={file_id(f)}" for f in files).encode())
    return f"{p.name}/:{h.hexdigest()[:16]}"


class LaunchedBackend(OpenAIBackend):
    """An OpenAI backend over a server this process started; ``close()`` stops the server."""

    server: ServerProcess

    def _launch(self, argv: Sequence[str], port: int, *, name: str, model_id: str, served_model: str | None,
                concurrency: int, startup_timeout_s: float, health_path: str = "/health", kw: dict) -> None:
        self.server = ServerProcess(argv, port=port, health_path=health_path, startup_timeout_s=startup_timeout_s,
                                    name=name)
        for k in ("base_url", "model_id", "served_model", "api_key_env"):
            kw.pop(k, None)
        try:
            OpenAIBackend.__init__(self, base_url=self.server.base_url, served_model=served_model, api_key_env="",
                                   concurrency=concurrency, model_id=model_id,
                                   max_retries=int(kw.pop("max_retries", 2)), **kw)
        except BaseException:
            self.server.close()
            raise

    def iter_generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, int, Completion]]:
        try:
            yield from super().iter_generate(requests)
        except BackendError:
            self.server.check_alive()  # a crashed server explains itself with its log
            raise

    def close(self) -> None:
        if hasattr(self, "_client"):
            super().close()
        if hasattr(self, "server"):
            self.server.close()
