"""`python chat.py run=RUN_DIR character=NAME` / `rolecraft chat ...`: talk to a character.

Multi-turn chat in the terminal with a trained adapter (``source=run``), a base model zero-shot
(``source=model``) or an OpenAI-compatible endpoint (``source=openai``), with the same character
prompt as training: the profile, and exemplars retrieved for every turn when the run trained with
retrieval. Tokens are printed as they are generated. The conversation is kept within
``history_budget`` characters (oldest turns dropped first). Commands: ``/reset``, ``/save FILE``,
``/character NAME``, ``/help``, ``/quit`` (or end of input).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rolecraft import config as _schema
from rolecraft.paths import config_dir

_schema.register("chat_schema")  # only ours: see config.register

HELP = "commands: /reset (forget the conversation), /save FILE, /character NAME, /help, /quit"


class Session:
    def __init__(self, cfg):
        from rolecraft.data import resolve_data_root, schema
        from rolecraft.data.prompts import PromptSpec
        from rolecraft.retrieval.index import prompt_builder
        from rolecraft.errors import ConfigError

        self.cfg = cfg
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

    def _check(self, name: str) -> str:
        from rolecraft.errors import ConfigError

        if name not in self.ds.characters:
            raise ConfigError(f"character={name!r} is not in the data; known: {', '.join(self.ds.characters)}")
        return name

    def _kept_history(self) -> list[dict]:
        """The most recent turns that fit the budget, whole user/assistant pairs only."""
        kept, used = [], 0
        for i in range(len(self.history) - 2, -1, -2):
            pair = self.history[i:i + 2]
            size = sum(len(m["content"]) for m in pair)
            if used + size > self.cfg.history_budget:
                break
            kept = pair + kept
            used += size
        return kept

    def messages(self, user: str) -> list[dict]:
        return [{"role": "system", "content": self.prompts.system(self.character, user)}, *self._kept_history(),
                {"role": "user", "content": user}]

    def reply(self, user: str, out) -> str:
        msgs = self.messages(user)
        pieces = []
        for piece in self.engine.stream(msgs, self.cfg.generation, seed=None):
            pieces.append(piece)
            out.write(piece)
            out.flush()
        text = "".join(pieces).strip()
        self.history += [{"role": "user", "content": user}, {"role": "assistant", "content": text}]
        return text

    def save(self, path: str) -> Path:
        from rolecraft.fileio import write_json

        p = Path(path).expanduser()
        write_json(p, {"character": self.character, "source": self.cfg.source, "run": self.cfg.run,
                       "messages": self.history})
        return p

    def loop(self, inp, out) -> None:
        from rolecraft.errors import RolecraftError

        interactive = inp.isatty()
        out.write(f"[{self.character}] {HELP}\n")
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
                    self.history = []
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
                        self.history = []
                        out.write(f"[now playing {self.character}; conversation reset]\n")
                    except RolecraftError as e:
                        out.write(f"[{' '.join(str(e).split())}]\n")
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
    from rolecraft.console import silence_known_noise

    silence_known_noise()  # peft's deprecation warnings would land in the conversation
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
