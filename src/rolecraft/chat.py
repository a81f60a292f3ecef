"""`python chat.py run=RUN_DIR character=NAME` / `rolecraft chat ...`: talk to a character.

Multi-turn chat in the terminal with a trained adapter (``source=run``), a base model zero-shot
(``source=model``) or an OpenAI-compatible endpoint (``source=openai``), with the same character
prompt as training: the profile, and exemplars retrieved for every turn when the run trained with
retrieval. Tokens are printed as they are generated. The conversation is kept within
``history_budget`` characters (oldest turns dropped first). Commands: ``/reset``, ``/save FILE``,
``/character NAME``, ``/as NAME`` (the following lines are said by NAME, rendered "NAME：text" as in
training's multi-party dialogue; ``/as`` alone: by the user again), ``/help``, ``/quit`` (or end of input).

``replay=FILE`` starts from a recorded conversation: a JSON list of messages, a JSON object with
``messages`` (what ``/save`` writes), or JSONL with one message per line; a message is
``{"role": "system"|"user"|"assistant", "content", "name"?}`` as in dialogue samples (a leading
system turn is the scene). A bad row stops the chat with one line naming file:line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rolecraft import config as _schema
from rolecraft.paths import config_dir

_schema.register("chat_schema")  # only ours: see config.register

HELP = ("commands: /reset (forget the conversation), /save FILE, /character NAME, /as NAME (speak as NAME; "
        "/as alone: as yourself), /help, /quit")


def read_replay(path: str) -> list[dict]:
    """The messages of a replay file (JSON list, JSON {"messages": [...]}, or JSONL), each checked as a
    dialogue turn; the first bad one raises DataError naming file:line."""
    import json

    from rolecraft.data.schema import parse_messages
    from rolecraft.errors import DataError
    from rolecraft.fileio import read_jsonl

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"replay={path}: no such file; give a JSON or JSONL file of messages (e.g. one /save wrote)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and "messages" in whole:
        whole = whole["messages"]
    if isinstance(whole, list):  # one JSON document: line numbers of each message
        rows = [(None, m) for m in whole]
    elif whole is not None and not isinstance(whole, dict):
        raise DataError(f"{p}: a replay file holds a list of messages, an object with 'messages', or one message "
                        "per line (JSONL)")
    else:
        rows = list(read_jsonl(p))
    out = []
    for n, (line, row) in enumerate(rows):
        where = f"{p}:{line}" if line is not None else f"{p}: message {n + 1}"
        try:
            (turn,) = parse_messages({"messages": [row]}, where)
        except DataError as e:  # the row is the file's own message, not a sample's messages[0]
            raise DataError(str(e).replace(f"{where}: messages[0]", where)) from None
        if turn["role"] == "system" and out:
            raise DataError(f"{where}: a system turn (the scene) may only come first")
        out.append(turn)
    return out


class Session:
    def __init__(self, cfg):
        from rolecraft.data import resolve_data_root, schema
        from rolecraft.data.prompts import PromptSpec
        from rolecraft.retrieval.index import prompt_builder
        from rolecraft.errors import ConfigError

        self.cfg = cfg
        replayed = read_replay(cfg.replay) if cfg.replay else []  # a bad file is named before a model loads
        cache = cfg.paths.cache_dir
        spec = PromptSpec.from_config(cfg.prompt)
        data_root = cfg.data.root
        if cfg.source == "run":
            from rolecraft.data.prompts import recorded_spec, resolve_spec, typed_override_keys
            from rolecraft.inference.sources import load_run, run_engine

            if not cfg.run:
                raise ConfigError("source=run needs run=RUN_DIR (a finished train.py run directory)")
            trained = load_run(cfg.run, cache, what="run")
            # the prompt the run trained with; a key typed on the command line wins (and is said)
            spec, diffs = resolve_spec(recorded_spec(cfg.run)[0], spec, typed_override_keys())
            if diffs:
                print(f"[prompt differs from the run's: {'; '.join(diffs)}]", file=sys.stderr)
            data_root = trained.config.data.root
            self.engine = run_engine(trained, cfg.device, 10**9)
        elif cfg.source == "model":
            from rolecraft.inference.sources import model_engine

            self.engine = model_engine(cfg.model, cache, cfg.device, 10**9)
        elif cfg.source == "openai":
            from rolecraft.inference.sources import endpoint_engine

            self.engine = endpoint_engine(cfg.endpoint, "endpoint", cfg.openai_model, cache, progress=False)
        else:
            raise ConfigError(f"source={cfg.source!r}: use run, model or openai")
        self.ds = schema.load(resolve_data_root(data_root))
        self.prompts = prompt_builder(self.ds, spec, cache)
        self.character = self._check(cfg.character or next(iter(self.ds.characters)))
        self.history: list[dict] = []
        self.scene: str | None = None  # a replayed conversation's system turn
        self.speaker: str | None = None  # /as NAME: who says the next lines (None: the user)
        if replayed and replayed[0]["role"] == "system":
            self.scene = replayed.pop(0)["content"]
        self.history = replayed

    def _check(self, name: str) -> str:
        from rolecraft.errors import ConfigError

        if name not in self.ds.characters:
            raise ConfigError(f"character={name!r} is not in the data; known: {', '.join(self.ds.characters)}")
        return name

    def _kept_history(self) -> list[dict]:
        """The most recent turns that fit the budget, starting with a user turn (for an alternating chat:
        whole user/assistant pairs; a replayed one may have several turns of a side in a row)."""
        kept, used = [], 0
        for m in reversed(self.history):
            if used + len(m["content"]) > self.cfg.history_budget:
                break
            kept.insert(0, m)
            used += len(m["content"])
        while kept and kept[0]["role"] != "user":
            kept.pop(0)
        return kept

    def messages(self, user: str) -> list[dict]:
        """The chat as training renders a dialogue sample: the character prompt (+ the replayed scene),
        the kept history with named turns as "name：text", the new line (by ``/as``'s speaker)."""
        from rolecraft.data.schema import Sample

        history = ([{"role": "system", "content": self.scene}] if self.scene else []) + self._kept_history()
        return self.prompts.messages(Sample("chat", "dialogue", self.character, user, [""], "test",
                                            messages=history, speaker=self.speaker))

    def reply(self, user: str, out) -> str:
        msgs = self.messages(user)
        pieces = []
        for piece in self.engine.stream(msgs, self.cfg.generation, seed=None):
            pieces.append(piece)
            out.write(piece)
            out.flush()
        text = "".join(pieces).strip()
        said = {"role": "user", "content": user, **({"name": self.speaker} if self.speaker else {})}
        self.history += [said, {"role": "assistant", "content": text}]
        return text

    def save(self, path: str) -> Path:
        from rolecraft.fileio import write_json

        p = Path(path).expanduser()
        scene = [{"role": "system", "content": self.scene}] if self.scene else []
        write_json(p, {"character": self.character, "source": self.cfg.source, "run": self.cfg.run,
                       "messages": scene + self.history})
        return p

    def loop(self, inp, out) -> None:
        from rolecraft.errors import RolecraftError

        interactive = inp.isatty()
        out.write(f"[{self.character}] {HELP}\n")
        if self.history or self.scene:
            out.write(f"[replayed {len(self.history)} turn(s){' and the scene' if self.scene else ''} "
                      f"from {self.cfg.replay}]\n")
        while True:
            if interactive:
                out.write("你> ")
                out.flush()
            line = inp.readline()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                cmd, _, arg = line.partition(" ")
                arg = arg.strip()
                if cmd in ("/quit", "/exit"):
                    break
                if cmd == "/reset":
                    self.history, self.scene = [], None
                    out.write("[conversation reset]\n")
                elif cmd == "/save":
                    if not arg:
                        out.write("[usage: /save FILE]\n")
                    else:
                        try:
                            out.write(f"[saved {len(self.history) // 2} turn(s) to {self.save(arg)}]\n")
                        except OSError as e:
                            out.write(f"[could not save to {arg}: {e.strerror or e}]\n")
                elif cmd == "/character":
                    try:
                        self.character = self._check(arg)
                        self.history, self.scene = [], None
                        out.write(f"[now playing {self.character}; conversation reset]\n")
                    except RolecraftError as e:
                        out.write(f"[{' '.join(str(e).split())}]\n")
                elif cmd == "/as":
                    self.speaker = arg or None
                    out.write(f"[now speaking as {arg}]\n" if arg else "[now speaking as yourself]\n")
                elif cmd == "/help":
                    out.write(HELP + "\n")
                else:
                    out.write(f"[unknown command {cmd}; {HELP}]\n")
                out.flush()
                continue
            out.write(f"{self.character}：")
            try:
                self.reply(line, out)
            except Exception as e:  # noqa: BLE001 - one failed turn (OOM, endpoint error) ends no session
                out.write(f"\n[this turn failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}; "
                          f"the conversation is unchanged]")
            out.write("\n")
            out.flush()


@hydra.main(config_path=config_dir(), config_name="chat", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    from rolecraft.config_checks import check_chat, one_line, scrub_hydra_records
    from rolecraft.errors import RolecraftError

    scrub_hydra_records()  # Hydra recorded the command line before this task started (if output_subdir is set)
    from rolecraft.console import setup

    setup(quiet=bool(cfg.quiet))  # known noise filtered first: peft's deprecation warnings would land in the conversation
    try:
        check_chat(cfg)  # every value range-checked before anything heavy loads
        session = Session(cfg)
        if getattr(session.engine, "device", None) is not None:
            import torch

            torch.manual_seed(cfg.seed)  # sampling is reproducible per session
        session.loop(sys.stdin, sys.stdout)
    except RolecraftError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(file=sys.stderr)


def main() -> None:
    from rolecraft.paths import quote_non_ascii_overrides

    from rolecraft.config_checks import refuse_secret_command_line

    refuse_secret_command_line(sys.argv[1:])  # before Hydra writes the command line to .hydra/
    sys.argv[1:] = quote_non_ascii_overrides(sys.argv[1:])
    from rolecraft.hydra_help import maybe_print_help

    if maybe_print_help("chat", sys.argv[1:]):  # only chat's own groups, without Hydra's slow listing
        return
    _hydra_main()


if __name__ == "__main__":
    main()
