"""Load test of ``soundstage app``: N API requests at once all complete, it answers afterwards, memory stays bounded.

    python benchmarks/bench_app_load.py [--model small] [--requests 8] [--seconds 5] [--steps 25] [--concurrency 1]

Starts ``soundstage app`` in a process of its own on a free loopback port (:class:`AppServer`), sends ``--requests``
``/generate`` calls at the same moment from as many threads (one ``gradio_client.Client`` each; the queue runs
``--concurrency`` at a time), and records: how many completed, the time to the first and to the last result, each
request's wall time, the server process's resident memory before, at its peak (``VmHWM`` in /proc: the most it ever
held, model and gradio included) and after, whether the page and one more request still answer (and how long that
request took), and the machine's load average (other jobs slow every figure). Prints a table and writes JSON
(``--out``, default ``runs/benchmarks/app/load.json``). The app's tests (tests/app/test_load.py) run the same
functions with shorter clips.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_io import add_out_argument, machine_info, write_results  # benchmarks/results_io.py

READY = re.compile(r"soundstage app: (http://\S+) \(.*outputs in (\S+), removed on exit")
PROMPTS = ["a car honks its horn", "a circular saw cuts through wood", "ocean waves crash on the shore",
           "a helicopter's rotor blades thump", "a steam locomotive whistles", "splashing footsteps in shallow water",
           "a dog barks", "rain falls on a tin roof"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """``soundstage app`` in a child process: :meth:`start` waits for its ready line (URL and workspace folder),
    :meth:`stop` sends SIGTERM (the app then removes its folder) and waits for the exit."""

    def __init__(self, model: str = "small", concurrency: int = 1, max_queue: int = 16, log: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.command = [sys.executable, "-m", "soundstage", "app", "--model", model, "--port", str(self.port),
                        "--concurrency", str(concurrency), "--max-queue", str(max_queue), *extra]
        self.log = log or Path(tempfile.mkstemp(prefix="soundstage-app-log-", suffix=".txt")[1])
        self.url = ""
        self.workspace = Path()
        self.process: subprocess.Popen[str] | None = None
        self.returncode: int | None = None

    def start(self, timeout: float = 300.0) -> AppServer:
        with self.log.open("w") as log:  # gradio logs to stderr: a file, so that a full pipe never blocks the app
            self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=log, text=True,
                                            cwd=ROOT, start_new_session=True)
        found: list[re.Match[str]] = []

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                match = READY.search(line)
                if match:
                    found.append(match)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            self.stop()
            raise RuntimeError(f"soundstage app did not start in {timeout:g} s; its log:\n{self.log.read_text()}")
        self.url, self.workspace = found[0].group(1), Path(found[0].group(2))
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, wait, and (only if it hangs) SIGKILL; returns the exit status."""
        if self.process is not None and self.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.returncode = self.process.wait()
        return self.returncode


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process now (``VmRSS``) and at its peak so far (``VmHWM``), MB (Linux /proc)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) / 1024
    return {"rss_mb": values["VmRSS"], "peak_rss_mb": values["VmHWM"]}


def call_generate(url: str, download_dir: Path, **options: Any) -> tuple[tuple[Any, ...], float]:
    """One ``/generate`` call with a fresh client; (result, wall seconds)."""
    from gradio_client import Client

    start = time.perf_counter()
    client = Client(url, verbose=False, download_files=str(download_dir))
    result = client.predict(api_name="/generate", **options)
    return result, time.perf_counter() - start


def run_load(server: AppServer, requests: int, download_dir: Path, seconds: float, steps: int) -> dict[str, Any]:
    """``requests`` concurrent /generate calls to ``server``, then one more and a page load; see the module doc."""
    before = memory_mb(server.pid)
    barrier = threading.Barrier(requests)
    outcomes: list[dict[str, Any]] = [{} for _ in range(requests)]
    start = time.perf_counter()

    def one(i: int) -> None:
        barrier.wait()
        try:
            result, wall = call_generate(server.url, download_dir, prompt=PROMPTS[i % len(PROMPTS)],
                                         azimuth_deg=-180 + 45 * i, seconds=seconds, steps=steps, seed=i)
            outcomes[i] = {"ok": True, "wall_s": wall, "done_at_s": time.perf_counter() - start,
                           "ambix": str(result[0]), "seed": result[3]["seed"]}
        except Exception as exc:  # noqa: BLE001 -- a failed request is a result to report, not a crash
            outcomes[i] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                           "done_at_s": time.perf_counter() - start}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    during = memory_mb(server.pid)
    with urllib.request.urlopen(server.url, timeout=30) as page:  # our own server, on loopback
        page_status = page.status
    _, after_wall = call_generate(server.url, download_dir, prompt="a dog barks", seconds=seconds, steps=steps, seed=99)
    after = memory_mb(server.pid)
    done = [o["done_at_s"] for o in outcomes if o.get("ok")]
    return {"requests": requests, "completed": len(done), "audio_seconds": seconds, "steps": steps,
            "time_to_first_result_s": min(done, default=None), "time_to_last_result_s": max(done, default=None),
            "request_wall_s": [o.get("wall_s") for o in outcomes], "errors": [o["error"] for o in outcomes
                                                                               if not o.get("ok")],
            "outcomes": outcomes, "page_status_after": page_status, "request_after_s": after_wall,
            "memory_before_mb": before["rss_mb"], "memory_after_mb": after["rss_mb"],
            "peak_memory_mb": max(during["peak_rss_mb"], after["peak_rss_mb"])}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="bundled model name or generation folder (default: small)")
    parser.add_argument("--requests", type=int, default=8, help="concurrent /generate requests (default 8)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length of each request (default 5 s)")
    parser.add_argument("--steps", type=int, default=25, help="sampling steps of each request (default 25)")
    parser.add_argument("--concurrency", type=int, default=1, help="the app's --concurrency (default 1)")
    parser.add_argument("--max-queue", type=int, default=16, help="the app's --max-queue (default 16)")
    add_out_argument(parser, "app/load")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    load_before = os.getloadavg()[0]  # other jobs on the machine slow every figure: recorded next to them
    server = AppServer(args.model, args.concurrency, args.max_queue).start()
    try:
        with tempfile.TemporaryDirectory() as downloads:
            result = run_load(server, args.requests, Path(downloads), args.seconds, args.steps)
    finally:
        server.stop()
    result["workspace_removed_on_exit"] = not server.workspace.exists()
    result.update({"model": args.model, "concurrency": args.concurrency, "max_queue": args.max_queue,
                   "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
                   "machine": machine_info()})
    print(f"{result['completed']}/{result['requests']} requests completed ({args.seconds:g} s clips, {args.steps} "
          f"steps, concurrency {args.concurrency})")
    print(f"time to first result {result['time_to_first_result_s']:.1f} s, "
          f"to last {result['time_to_last_result_s']:.1f} s")
    print(f"server memory: {result['memory_before_mb']:.0f} MB before, peak {result['peak_memory_mb']:.0f} MB, "
          f"{result['memory_after_mb']:.0f} MB after; page after: HTTP {result['page_status_after']}, one more "
          f"request {result['request_after_s']:.1f} s; workspace removed on exit: "
          f"{result['workspace_removed_on_exit']}")
    write_results(args.out, result)


if __name__ == "__main__":
    main()
