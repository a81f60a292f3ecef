"""construct.py's request engine against the ideal: 400 requests at concurrency 16 with 100 ms each.

    python benchmarks/bench_construct.py [--requests 400] [--concurrency 16] [--latency 0.1] [--repeats 3]

The fake OpenAI server runs in its own process (``python -m rolecraft.testing.fake_openai
--construct --latency 0.1``) so its threads do not share this process's GIL; every request is held
there for the latency, then answered. The work is the annotate stage on a synthetic dataset with
exactly ``--requests`` batches (one dialogue of 5 unlabelled lines each), run through the same
``run()`` that ``python construct.py`` calls: journal, rate limiter (off), retries, validation,
tqdm off. The ideal is requests x latency / concurrency (2.5 s for the defaults); the ratio is
the median wall time of the stage over that. Then the same run again on the warm journal: the
number of requests the server saw (read from its /_fake/stats) must be zero. The openai SDK is
imported before the clock starts (its ~1 s import is process start-up, not request throughput).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path


def make_dataset(root: Path, dialogues: int) -> Path:
    from rolecraft.data.schema import Character, RoleInstruct, Utterance, save

    name = "测试角色"
    script = [Utterance(f"d{d}-t{t}", name, f"d{d}", t, name if t % 2 else "路人", f"第{d}段对话的第{t}句台词，今天真不错。", None)
              for d in range(dialogues) for t in range(1, 6)]
    ds = RoleInstruct(None, {"format": "roleinstruct", "version": 1, "name": "bench"},
                      {name: Character(name, {"名字": name})}, script, [])
    return save(ds, root)


def server_requests(base_url: str) -> int:
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/_fake/stats") as r:
        return json.load(r)["requests"]["chat"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir

    import openai  # noqa: F401  (import cost outside the timing)

    import rolecraft.config
    from rolecraft.construct.main import run
    from rolecraft.paths import config_dir

    rolecraft.config.register()

    srv = subprocess.Popen([sys.executable, "-m", "rolecraft.testing.fake_openai", "--construct", "--port", "0",
                            "--latency", str(args.latency)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base_url = srv.stdout.readline().strip()
    ideal = args.requests * args.latency / args.concurrency
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            data = make_dataset(tmp / "data", args.requests)

            def once(tag: str, journal: Path) -> dict:
                with initialize_config_dir(config_dir(), version_base="1.3"):
                    cfg = compose("construct", overrides=[
                        "llm=local", f"llm.base_url={base_url}", f"llm.concurrency={args.concurrency}",
                        "stage=annotate", "construct.annotate.batch_size=5", f"construct.input={data}",
                        f"construct.out={tmp / tag / 'dataset'}", f"construct.journal={journal}",
                        f"paths.output_dir={tmp / tag}", "construct.progress=false"])
                return run(cfg)["stages"]["annotate"]

            cold = []
            for i in range(args.repeats):
                before = server_requests(base_url)
                st = once(f"cold{i}", tmp / f"journal{i}.sqlite")
                assert st["requests"] == args.requests == server_requests(base_url) - before, st
                cold.append(st["seconds"])
                print(f"cold run {i + 1}: {st['seconds']:.3f} s for {st['requests']} requests", file=sys.stderr)
            before = server_requests(base_url)
            warm = once("warm", tmp / "journal0.sqlite")
            sent = server_requests(base_url) - before
    finally:
        srv.terminate()
        srv.wait()
    med = statistics.median(cold)
    print(f"ideal {ideal:.2f} s; cold runs {', '.join(f'{s:.3f}' for s in cold)} s; median {med:.3f} s = "
          f"{med / ideal:.2f}x ideal (target <= 1.3x)")
    print(f"warm journal: {warm['answers_from_journal']} answers from the journal, {sent} requests sent, "
          f"{warm['seconds']:.3f} s")
    print(f"| {args.requests} requests, concurrency {args.concurrency}, {args.latency * 1000:.0f} ms each | "
          f"ideal {ideal:.2f} s | {med:.2f} s | {med / ideal:.2f}x | warm rerun: {sent} requests, {warm['seconds']:.2f} s |")
    return 0 if med / ideal <= 1.3 and sent == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
