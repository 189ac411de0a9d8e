"""`make bench` (code packages): what building and storing a step's code package costs a task,
cold and when the code did not change, on a local store and on the S3 emulator (moto); and what
fetching, checking and extracting a 10 MB package costs a pod with an empty cache.

The folder: 2,000 Python files (100 packages of 20 modules, 1-3 KB each, ~4 MB) and a
``.gitignore``. Every measured call runs in a fresh process, as a task does (each Airflow task
is a process of its own), timed inside it around the call (the interpreter's start and imports
are not counted: a task has paid for them already); the median of ``--rounds`` processes:

* cold build + upload: an empty build cache and an empty store (every file read, scanned for
  credentials, archived, compressed, stored);
* unchanged, new process: the same folder again in a new process: the walk that stats the files,
  the disk cache's entry read, and one request asking the store whether it holds the package;
* unchanged, same process: a second call in that process (the in-process cache, no request).

Baselines, in the same run: for builds, the walk alone (``os.walk`` and a ``stat`` per file,
what any build must at least do to notice a change); for the fetch, downloading the package's
bytes alone. The goals of issue 20: unchanged code adds at most 50 ms to a task; a 10 MB
package is fetched and extracted in under 1 s on the emulator. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FILES = 2000
FETCH_BYTES = 10 * 2**20

CHILD = r"""
import json, os, sys, time
args = json.loads(sys.argv[1])
from aq_airflow.artifacts import code_package
from aq_airflow.artifacts.store import filesystem

def timed(call):
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value

times = []
if args["op"] == "build":
    for _ in range(args["calls"]):
        took, _ = timed(lambda: code_package.upload(code_package.build(args["folder"]), args["root"]))
        times.append(took)
elif args["op"] == "walk":
    def walk():
        for folder, _, names in os.walk(args["folder"]):
            for name in names:
                os.stat(os.path.join(folder, name), follow_symlinks=False)
    times.append(timed(walk)[0])
elif args["op"] == "fetch":
    times.append(timed(lambda: code_package.fetch(args["uri"], args["digest"], args["cache"]))[0])
elif args["op"] == "download":
    def download():
        fs, path = filesystem(args["uri"])
        with fs.open_input_stream(path) as handle:
            return handle.read()
    times.append(timed(download)[0])
print(json.dumps(times))
"""


def child(env: dict, **args) -> list[float]:
    """Seconds of the measured call(s) in a fresh process."""
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bench child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def code_folder(base: Path) -> Path:
    """2,000 files: a `.gitignore` and 1,999 Python modules of 1-3 KB (the same text every run)."""
    rng = random.Random(20)
    folder = base / "code"
    folder.mkdir()
    (folder / ".gitignore").write_text("*.log\nbuild/\n.env\n")
    for index in range(FILES - 1):
        module = folder / f"pkg{index // 20:03}" / ("__init__.py" if index % 20 == 0 else f"m{index % 20:02}.py")
        module.parent.mkdir(exist_ok=True)
        lines = [f"def f{i}(x):\n    return x * {rng.randint(1, 10**6)} + {i}\n" for i in range(rng.randint(25, 75))]
        module.write_text("".join(lines))
    return folder


def big_folder(base: Path) -> Path:
    """10 MB that compresses to about itself (random bytes, as trained weights would be)."""
    folder = base / "big"
    folder.mkdir()
    rng = random.Random(10)
    for index in range(100):
        (folder / f"part{index:03}.bin").write_bytes(rng.randbytes(FETCH_BYTES // 100))
    return folder


def measure_store(name: str, root_of, folder: Path, env: dict, rounds: int, work: Path) -> list[tuple]:
    """(row, median ms, baseline row, baseline median ms) for one store."""
    cold, new, same = [], [], []
    for index in range(rounds):
        fresh = {**env, "XDG_CACHE_HOME": str(work / f"xdg-cold-{name}-{index}")}
        cold += child(fresh, op="build", folder=str(folder), root=root_of(f"cold{index}"), calls=1)
    warm = {**env, "XDG_CACHE_HOME": str(work / f"xdg-warm-{name}")}
    child(warm, op="build", folder=str(folder), root=root_of("warm"), calls=1)
    for _ in range(rounds):
        first, second = child(warm, op="build", folder=str(folder), root=root_of("warm"), calls=2)
        new.append(first)
        same.append(second)
    walk = [child(env, op="walk", folder=str(folder))[0] for _ in range(rounds)]
    base = ("walk and stat the folder", _ms(walk))
    return [
        (f"cold build + upload ({name})", _ms(cold), *base),
        (f"unchanged, new process ({name})", _ms(new), *base),
        (f"unchanged, same process ({name})", _ms(same), *base),
    ]


def _ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def s3_emulator(env: dict) -> tuple[object, dict]:
    """moto's S3 server on loopback and the environment that points the SDKs at it."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3_env = {**env, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
              "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}  # fmt: skip
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                 aws_secret_access_key="bench").create_bucket(Bucket="bench-code")  # fmt: skip
    return server, s3_env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per figure (median)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    work = Path(tempfile.mkdtemp(prefix="aq-bench-code-"))
    server = None
    try:
        folder = code_folder(work)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        server, s3_env = s3_emulator(env)
        rows = measure_store("local", lambda name: str(work / "stores" / name), folder, env, args.rounds, work)
        rows += measure_store("S3 emulator", lambda name: f"s3://bench-code/{name}", folder, s3_env, args.rounds, work)

        from aq_airflow.artifacts import code_package

        os.environ.update({k: v for k, v in s3_env.items() if k.startswith("AWS_")})
        package = code_package.build(str(big_folder(work)), cache=False)
        uri = code_package.upload(package, "s3://bench-code/big")
        fetch = [
            child(s3_env, op="fetch", uri=uri, digest=package.digest, cache=str(work / f"pods/{i}"))[0]
            for i in range(args.rounds)
        ]  # fmt: skip
        download = [child(s3_env, op="download", uri=uri)[0] for _ in range(args.rounds)]
        rows.append(("10 MB fetch + verify + extract, cold (S3 emulator)", _ms(fetch),
                     "download its bytes alone", _ms(download)))  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ncode packages: {FILES:,} files ({size / 2**20:.1f} MiB) to build; a {len(package.data) / 2**20:.1f} MiB "
          f"package to fetch; median of {args.rounds} fresh processes each\n")  # fmt: skip
    print("| what | ms | baseline | baseline ms | ratio |")
    print("|---|---:|---|---:|---:|")
    for what, ms, baseline, base_ms in rows:
        print(f"| {what} | {ms:.1f} | {baseline} | {base_ms:.1f} | {ms / base_ms:.2f}x |")
    unchanged = max(ms for what, ms, *_ in rows if what.startswith("unchanged, new process"))
    print(f"\ngoal: unchanged code adds at most 50 ms to a task: {unchanged:.1f} ms (worst store)")
    print(f"goal: a 10 MB package fetched and extracted in under 1 s on the emulator: {rows[-1][1] / 1000:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
