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
        from rolecraft.data.prompts import PromptBuilder
        from rolecraft.errors import ConfigError
        from rolecraft.retrieval.index import build_retriever

        self.cfg = cfg
        cache = cfg.paths.cache_dir
        self.model = self.tok = self.client = None
        if cfg.source == "run":
            from rolecraft.evaluation.answers import load_run

            if not cfg.run:
                raise ConfigError("source=run needs run=RUN_DIR (a finished train.py run directory)")
            self.model, self.tok, run_cfg = load_run(cfg.run, cache)
            data_root, emotions, n_ex = run_cfg.data.root, run_cfg.emotions.enabled, run_cfg.data.num_exemplars
            rcfg, self.model_cfg = run_cfg.get("retrieval"), run_cfg.model
        elif cfg.source == "model":
            from rolecraft.modeling.base import load_base

            self.model, self.tok, _ = load_base(cfg.model, cache)
            data_root, emotions, n_ex, rcfg, self.model_cfg = cfg.data, cfg.emotions, cfg.num_exemplars, cfg.retrieval, cfg.model
        elif cfg.source == "openai":
            from rolecraft.api.client import read_api_key

            from openai import OpenAI

            self.client = OpenAI(api_key=read_api_key(cfg.endpoint.api_key_env, "endpoint"),
                                 base_url=cfg.endpoint.base_url or None, timeout=cfg.endpoint.timeout,
                                 max_retries=cfg.endpoint.max_retries)
            data_root, emotions, n_ex, rcfg = cfg.data, cfg.emotions, cfg.num_exemplars, cfg.retrieval
        else:
            raise ConfigError(f"source={cfg.source!r}: use run, model or openai")
        self.ds = schema.load(resolve_data_root(data_root))
        retriever = build_retriever(rcfg, self.ds, cache) if rcfg is not None and rcfg.backend != "none" else None
        self.prompts = PromptBuilder(self.ds, emotions, n_ex, retriever)
        self.character = self._check(cfg.character or next(iter(self.ds.characters)))
        self.history: list[dict] = []
        if self.model is not None:
            import torch

            from rolecraft.data.tokenize import ChatEncoder
            from rolecraft.modeling.base import stop_token_ids

            torch.manual_seed(cfg.seed)
            self.device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self.model.to(self.device).eval()
            self.encoder = ChatEncoder(self.tok, 10**9, 0, self.model_cfg.chat_template)
            self.stop_ids = stop_token_ids(self.tok, self.model_cfg)

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
        for piece in (self._stream_local(msgs) if self.model is not None else self._stream_api(msgs)):
            pieces.append(piece)
            out.write(piece)
            out.flush()
        text = "".join(pieces).strip()
        self.history += [{"role": "user", "content": user}, {"role": "assistant", "content": text}]
        return text

    def _stream_local(self, msgs):
        import threading

        import torch
        from transformers import TextIteratorStreamer

        g = self.cfg.generation
        ids = torch.tensor([self.encoder.prompt_ids(msgs)], device=self.device)
        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                      max_new_tokens=g.max_new_tokens, do_sample=g.do_sample, eos_token_id=self.stop_ids,
                      pad_token_id=self.tok.pad_token_id if self.tok.pad_token_id is not None else self.stop_ids[0],
                      repetition_penalty=g.repetition_penalty)
        if g.do_sample:
            kwargs.update(top_p=g.top_p, temperature=g.temperature)
        failure: list[BaseException] = []

        def work():
            try:
                self.model.generate(**kwargs)
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                failure.append(e)
                streamer.end()  # or the loop below would wait for tokens forever

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        yield from streamer
        worker.join()
        if failure:
            raise failure[0]

    def _stream_api(self, msgs):
        g = self.cfg.generation
        stream = self.client.chat.completions.create(
            model=self.cfg.openai_model, messages=msgs, stream=True, max_tokens=g.max_new_tokens,
            **({"temperature": g.temperature, "top_p": g.top_p} if g.do_sample else {"temperature": 0.0}))
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

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
    from rolecraft.errors import RolecraftError

    try:
        Session(cfg).loop(sys.stdin, sys.stdout)
    except RolecraftError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(file=sys.stderr)


def main() -> None:
    from rolecraft.paths import quote_non_ascii_overrides

    sys.argv[1:] = quote_non_ascii_overrides(sys.argv[1:])
    _hydra_main()


if __name__ == "__main__":
    main()
