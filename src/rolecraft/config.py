"""Typed config schema: the single source of truth for every key of `train.py`, `evaluate.py` and `construct.py`.

The YAML files under ``conf/`` only choose values; a key not declared here is rejected by Hydra
when the config is composed (before any model loads). Import cost: omegaconf/hydra only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, List, Optional

import yaml
from hydra.core.config_store import ConfigStore


# ---- closed sets of choices ------------------------------------------------------------------
# A field typed with one of these rejects any other value when the config is composed, listing the
# allowed ones (Hydra exits 1 before anything loads). Member names are the spellings used in the YAML
# files and on the command line; being str subclasses, members compare, hash, format and
# JSON-encode as those strings, so code reading the config sees plain strings.


class Choice(StrEnum):
    def __repr__(self) -> str:  # messages that quote a value show 'cosine', not <Scheduler.cosine: ...>
        return repr(self.value)


# yaml.safe_dump (prompt.yaml, sweep files) writes a choice as its string
yaml.SafeDumper.add_multi_representer(Choice, lambda dumper, v: dumper.represent_str(v.value))


class Mix(Choice):
    general = "general"
    specific = "specific"
    hybrid = "hybrid"
    dialogue = "dialogue"  # multi-turn dialogue samples only (samples.jsonl's and the script's windows)


class DialogueLoss(Choice):
    all = "all"  # every assistant turn of a dialogue sample is trained
    last = "last"  # only its final answer (the turn it is scored on)


class RetrievalBackend(Choice):
    none = "none"
    lexical = "lexical"
    bge = "bge"
    openai = "openai"


class PassageSource(Choice):
    script = "script"
    profile = "profile"


class Dtype(Choice):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


# member names are what OmegaConf matches a string against, and "4bit" is no identifier: functional form
Quantization = Choice("Quantization", {"none": "none", "4bit": "4bit", "8bit": "8bit"})


class LoraBias(Choice):
    none = "none"
    all = "all"
    lora_only = "lora_only"


class Scheduler(Choice):
    constant = "constant"
    linear = "linear"
    cosine = "cosine"


class CompileMode(Choice):
    none = "none"
    layers = "layers"


class RougeTokenizer(Choice):
    jieba = "jieba"
    char = "char"


class RougeStat(Choice):
    f = "f"
    r = "r"
    p = "p"


class References(Choice):
    max = "max"
    first = "first"


class Postprocess(Choice):
    none = "none"
    strip_punct = "strip_punct"


class LoggerName(Choice):
    csv = "csv"
    wandb = "wandb"
    none = "none"


class Benchmark(Choice):
    roleinstruct = "roleinstruct"
    rolebench_zh = "rolebench_zh"
    belle = "belle"
    jsonl = "jsonl"
    charactereval = "charactereval"


class Kind(Choice):
    raw = "raw"
    general = "general"
    specific = "specific"
    dialogue = "dialogue"


class AnswersSource(Choice):
    run = "run"
    model = "model"
    openai = "openai"
    predictions = "predictions"


class PredictionsFormat(Choice):
    auto = "auto"
    rolecraft = "rolecraft"
    rolebench = "rolebench"


class RpcsBackend(Choice):
    none = "none"
    openai = "openai"
    local = "local"


class JudgeMode(Choice):
    none = "none"
    rank = "rank"
    pointwise = "pointwise"


class ChatSource(Choice):
    run = "run"
    model = "model"
    openai = "openai"


@dataclass
class DataConfig:
    # which instruction samples train: general | specific | hybrid (the paper's Table 6 ablation) | dialogue (issue 17)
    mix: Mix = Mix.hybrid
    # a canonical RoleInstruct directory, or "embedded:demo" (the demo data shipped in the package)
    root: str = "embedded:demo"
    # hybrid only: share of specific samples in the training mix; null keeps every sample of both kinds
    specific_ratio: Optional[float] = None
    # raw (out-of-character) answers also train (off: RAW measures general ability kept, not taught)
    train_on_raw: bool = False
    # the authors' script: source 1024, target 128 tokens; prompts longer are cut from the left, and counted
    max_source_length: int = 1024
    max_target_length: int = 128
    max_train_samples: Optional[int] = None
    # per kind (raw/general/specific), for quick evaluation; null = whole split
    max_eval_samples: Optional[int] = None
    # speed (issue 7): bucket samples of similar length into the same batch
    group_by_length: bool = True
    # speed: pack each step's samples into rows (position ids restart per sample, no attention across
    # samples) instead of padding them; each packed row is one micro-batch. A model that cannot keep
    # packed samples apart (probed at start) trains on padded micro-batches instead, with a warning
    packing: bool = True
    # tokens per packed row; null = max_source_length + max_target_length
    pack_length: Optional[int] = None
    num_workers: int = 0
    # multi-turn dialogue (issue 17): windows of the script's scenes join the data as kind "dialogue"
    # (always with mix=dialogue); command line data.dialogue=on|off
    dialogue: bool = False
    # share of dialogue samples in the training mix; null = every one available beside the mix's samples
    dialogue_ratio: Optional[float] = None
    # which assistant turns of a dialogue sample carry the loss: all | last. Default last: script windows
    # (stride 1) already make every character line the last answer of one window, so "all" would train
    # each line several times over; last also trains exactly the turn evaluation scores
    dialogue_loss: DialogueLoss = DialogueLoss.last
    # script windows: turns per window (answer included), character turns between windows' answers
    dialogue_window: int = 8
    dialogue_stride: int = 1
    # share of scenes in val / test (split by scene: a scene never feeds two splits)
    dialogue_val: float = 0.1
    dialogue_test: float = 0.2
    # encode (prompts + chat template + loss mask) once per inputs, cached under paths.cache_dir/encoded
    # (data/encoding.py); false: encode in memory every run
    encoding_cache: bool = True


@dataclass
class EndpointConfig:
    """An OpenAI-compatible HTTP endpoint. The key is read from the environment, never stored."""

    # null = api.openai.com; e.g. http://localhost:8000/v1 (vLLM) or a provider's compatible URL
    base_url: Optional[str] = None
    # name of the environment variable that holds the API key (the key itself never enters a config)
    api_key_env: str = "OPENAI_API_KEY"
    # requests in flight at once
    concurrency: int = 8
    # retries after the first try, on 429, 5xx, timeouts and connection errors
    max_retries: int = 6
    # seconds per request
    timeout: float = 60.0
    # exponential backoff: base * 2^attempt seconds (with jitter), capped; a Retry-After header wins
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    # answers are cached on disk by (endpoint, model, request): a rerun does not pay twice
    cache: bool = True


@dataclass
class RetrievalConfig:
    """Character context by retrieval (the paper's BGE step): the passages most relevant to the question
    become the prompt's exemplars, at training and at inference."""

    # none (evenly spread exemplars) | lexical (BM25, offline) | bge (sentence-transformers) | openai
    backend: RetrievalBackend = RetrievalBackend.none
    # passages per question, and the most characters they may take together
    k: int = 6
    budget: int = 600
    # what is indexed per character: its script lines and/or its profile facts
    sources: List[PassageSource] = field(default_factory=lambda: [PassageSource.script, PassageSource.profile])
    # bge: a sentence-transformers model path or id; openai: the embedding model name
    model: str = "BAAI/bge-large-zh-v1.5"
    # bge: prefix of queries (null = BGE's own for bge-*-zh-v1.5 models, none otherwise)
    query_instruction: Optional[str] = None
    device: Optional[str] = None
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


@dataclass
class PromptConfig:
    """What the model sees besides the question, the same for train, evaluate and chat. A run records
    it (prompt.yaml, with a hash of the rendered template); evaluating or chatting with that run reuses it."""

    # emotion labels on the character's script lines (the paper's Table 5); command line: emotions=on|off
    emotions: bool = True
    # script exemplars of the character in the system prompt (0 = profile only)
    num_exemplars: int = 6
    # the prompt text (rolecraft.data.prompts.TEMPLATES); a new wording is a new name, old runs keep theirs
    template: str = "v1"
    # character context by retrieval instead of evenly spread exemplars; command line: retrieval=lexical|bge|openai
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)


@dataclass
class ModelConfig:
    # preset name, for records only
    name: str = "tiny"
    # a hub id, a local directory, or "embedded:tiny" (built on first use from the demo corpus)
    name_or_path: str = "embedded:tiny"
    trust_remote_code: bool = False
    # auto | float32 | bfloat16 | float16
    dtype: Dtype = Dtype.float32
    # LoRA target modules for this architecture (lora.target_modules overrides)
    lora_targets: List[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # a Jinja chat template replacing the tokenizer's own (null = the tokenizer's template)
    chat_template: Optional[str] = None
    # tokens that end an assistant turn, besides eos (e.g. "<|im_end|>", "<|eot_id|>")
    stop_tokens: List[str] = field(default_factory=list)
    # sdpa | eager | flash_attention_2 | null (library default)
    attn_implementation: Optional[str] = None
    gradient_checkpointing: bool = False
    revision: Optional[str] = None
    # build and use a random-weight miniature of this preset's architecture (2 layers, small hidden size,
    # the preset's head layout, special tokens, chat template and LoRA targets; no download), cached in
    # paths.cache_dir: the whole train/generate/export path of a real base, in seconds (rolecraft.modeling.twins)
    tiny: bool = False
    # QLoRA: none | 4bit (bitsandbytes NF4, double quantization, bf16 compute) | 8bit (LLM.int8); needs CUDA
    # and the gpu extra (pip install 'rolecraft[gpu]'); adapters are exported and merged on the unquantized base
    quantization: Quantization = Quantization["none"]


@dataclass
class LoraConfig:
    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    # null = the model preset's lora_targets; a list of module names, or all-linear (every linear layer but
    # the output head, peft's spelling; a one-element list [all-linear] means the same)
    target_modules: Optional[Any] = None
    bias: LoraBias = LoraBias.none
    # DoRA (weight-decomposed LoRA: a learned magnitude per output feature; slower steps, often better at low r)
    use_dora: bool = False
    # rank-stabilised scaling alpha/sqrt(r) instead of alpha/r (keeps high ranks from learning too slowly)
    use_rslora: bool = False
    # modules trained in full and saved with the adapter (e.g. [embed_tokens, lm_head] after adding tokens)
    modules_to_save: List[str] = field(default_factory=list)


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    eps: float = 1e-8
    # samples per optimizer step on each device; split into micro-batches (gradient accumulation)
    batch_size: int = 4
    micro_batch_size: int = 2
    # constant | linear | cosine (after warmup)
    scheduler: Scheduler = Scheduler.constant
    warmup_steps: int = 0
    gradient_clip_val: float = 1.0


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    # auto | ddp | ddp_spawn | fsdp | deepspeed_stage_2 ... (Lightning strategy names; fsdp is
    # RoleCraft's FSDP2 through Lightning's ModelParallelStrategy, on CPU (gloo) or GPUs)
    strategy: str = "auto"
    # ddp/fsdp process-group backend: null = Lightning's choice (nccl on GPU, gloo on CPU)
    process_group_backend: Optional[str] = None
    precision: str = "32-true"
    # optimizer steps; -1 = use max_epochs
    max_steps: int = 120
    max_epochs: int = -1
    val_check_interval: Optional[int] = 60
    limit_val_batches: Optional[float] = None
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 60
    enable_progress_bar: bool = True
    deterministic: bool = False
    # speed: project onto the vocabulary only where the next token is a label (transformers'
    # logits_to_keep; same loss); models without logits_to_keep fall back to full logits
    label_logits_only: bool = True
    # speed (GPU): none | layers (torch.compile each decoder layer in place; the first steps compile)
    compile: CompileMode = CompileMode.none


@dataclass
class GenerationConfig:
    # evaluation is greedy (reproducible); chat uses do_sample with the paper's top_p/temperature
    do_sample: bool = False
    temperature: float = 0.95
    top_p: float = 0.7
    max_new_tokens: int = 64
    repetition_penalty: float = 1.0
    # speed: prompts of a batch that start alike (a character's profile and exemplars) prefill that
    # prefix once and share its KV cache; the answers are those of unshared prompts
    share_prefix: bool = True
    # speed (greedy, no repetition penalty): a row leaves the batch once it has stopped instead of
    # decoding padding until the longest answer ends
    drop_finished: bool = True
    # speed (with drop_finished): continuous batching, a freed slot is refilled with the next prompt
    # at once instead of when the whole batch has finished
    continuous: bool = True


@dataclass
class RougeConfig:
    # jieba | char
    tokenizer: RougeTokenizer = RougeTokenizer.jieba
    # f | r | p
    stat: RougeStat = RougeStat.f
    # max | first
    references: References = References.max
    # none | strip_punct
    postprocess: Postprocess = Postprocess.none


@dataclass
class EvalConfig:
    enabled: bool = True
    split: str = "test"
    batch_size: int = 16
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rouge: RougeConfig = field(default_factory=RougeConfig)


@dataclass
class WandbConfig:
    project: str = "rolecraft"
    entity: Optional[str] = None
    group: Optional[str] = None
    job_type: Optional[str] = "train"
    tags: List[str] = field(default_factory=list)
    # online | offline | disabled
    mode: str = "online"
    log_model: bool = False


@dataclass
class LoggerConfig:
    # csv | wandb | none
    name: LoggerName = LoggerName.csv
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class PathsConfig:
    # the run directory (Hydra's); everything a run writes goes here
    output_dir: str = "${hydra:runtime.output_dir}"
    # where the embedded tiny model is built; shared by all runs
    cache_dir: str = "${oc.env:ROLECRAFT_CACHE,'~/.cache/rolecraft'}"


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 42
    # resume from a Lightning checkpoint (adapter weights + optimizer + loop state)
    ckpt_path: Optional[str] = None
    # free-form tags recorded with the run (experiments set them)
    tags: List[str] = field(default_factory=list)
    # true: only warnings and errors on stderr, no progress bars (stdout is unchanged)
    quiet: bool = False


# ---- evaluate.py ---------------------------------------------------------------------------


@dataclass
class BenchmarkConfig:
    # roleinstruct | rolebench_zh | belle | jsonl | charactereval
    name: Benchmark = Benchmark.roleinstruct
    # roleinstruct: a canonical dataset dir or embedded:demo; rolebench_zh: the dir holding general/ and
    # role_specific/; belle: eval_set.json (or its dir); jsonl: a JSONL file of canonical samples;
    # charactereval: the dir holding test_data.jsonl, character_profiles.json and id2metric.jsonl
    root: Optional[str] = "embedded:demo"
    # roleinstruct/jsonl: which split is scored (jsonl rows without "split" always count)
    split: str = "test"
    # at most this many items per kind (raw/general/specific), for quick runs; null = all
    max_samples: Optional[int] = None
    # kinds to keep (empty = every kind the benchmark has)
    kinds: List[Kind] = field(default_factory=list)
    # charactereval: a reward model directory (AutoModelForSequenceClassification, one output, e.g. CharacterRM)
    # that scores each answer on the item's dimensions; null = none
    reward_model: Optional[str] = None
    # charactereval: reward-model inputs longer than this many tokens keep their end (and are counted)
    reward_max_length: int = 4096


@dataclass
class AnswersConfig:
    # run | model | openai | predictions
    source: AnswersSource = AnswersSource.run
    # the model's name in metrics, tables and the judge (null = derived from the source)
    name: Optional[str] = None
    # run: a train.py run directory; predictions: a predictions file
    path: Optional[str] = None
    # predictions: auto | rolecraft | rolebench
    format: PredictionsFormat = PredictionsFormat.auto
    # predictions: benchmark items with no prediction are an error unless this is true (they then score 0)
    allow_missing: bool = False
    # predictions: the least share (0-1) of the file's predictions that must join a benchmark item; fewer
    # is an error (a file for another benchmark or split). Unmatched ones are always counted and reported;
    # none joining is always an error. RoleBench's rolegpt_baseline files answer train questions too (22% join)
    min_matched: float = 0.1
    # model/run: prompts per generation batch; prompts longer than max_source_length tokens are cut
    # from the left (and counted), as in training
    batch_size: int = 16
    max_source_length: int = 1024
    # openai: the chat model name at the endpoint
    model: str = "gpt-3.5-turbo"
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


@dataclass
class RpcsConfig:
    # none | openai | local  (RPCS: cosine similarity of answer and reference embeddings)
    backend: RpcsBackend = RpcsBackend.none
    # openai: embedding model name (the paper: text-embedding-ada-002); local: a sentence-transformers
    # model directory or hub id (e.g. BAAI/bge-large-zh-v1.5)
    model: str = "text-embedding-ada-002"
    batch_size: int = 64
    # max | first: which reference(s) an answer is compared with
    references: References = References.max
    # local: cpu | cuda | null (auto)
    device: Optional[str] = None
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


@dataclass
class JudgeConfig:
    # none | rank | pointwise
    mode: JudgeMode = JudgeMode.none
    model: str = "gpt-4"
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    # the other models ranked against this run's answers: evaluation run dirs or predictions files,
    # as PATH (named by the run's answers/name, else the file name) or 'NAME=PATH' (quote it on the command line)
    compare: List[str] = field(default_factory=list)
    # questions judged (sampled with the seed); null = every joined question
    max_items: Optional[int] = 100
    # each question judged this many times with a fresh shuffle of the candidates
    repeats: int = 1
    # a malformed or inconsistent verdict is re-asked up to this many tries in total, then recorded as failed
    max_attempts: int = 3
    # the largest share (0-1) of failed verdicts a run may have: more fails the run (exit 2, metrics.json
    # not written; judge.jsonl and samples.jsonl are); 1.0 records any number of failures (with a warning)
    max_failed: float = 0.5
    temperature: float = 0.0
    max_tokens: int = 512


@dataclass
class EvaluateConfig:
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    answers: AnswersConfig = field(default_factory=AnswersConfig)
    # the character prompt; answers=run uses the run's recorded spec (a value typed on the command line
    # overrides it, and the difference is reported)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    # answers=model: the base model preset (same group as train.py)
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rouge: RougeConfig = field(default_factory=RougeConfig)
    rpcs: RpcsConfig = field(default_factory=RpcsConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    # answers=model/run: where generation runs (cpu | cuda | cuda:1 ...; null = cuda when available)
    device: Optional[str] = None
    seed: int = 42
    tags: List[str] = field(default_factory=list)
    # true: only warnings and errors on stderr, no progress bars (stdout is unchanged)
    quiet: bool = False


# ---- construct.py --------------------------------------------------------------------------


@dataclass
class LlmConfig(EndpointConfig):
    """The chat model that builds data (the paper: GPT-4 at temperature 0.7, top_p 0.95)."""

    model: str = "gpt-4"
    temperature: float = 0.7
    top_p: float = 0.95
    # cap on answer length per request (null = the endpoint's default)
    max_tokens: Optional[int] = 2048
    # sent as the request's seed when set (best-effort determinism on OpenAI)
    seed: Optional[int] = None
    # client-side rate limits (null = none); a token budget counts prompt + expected answer tokens
    requests_per_minute: Optional[float] = None
    tokens_per_minute: Optional[float] = None
    # how much of a minute's budget may go out at once (the bucket size, in seconds of budget)
    burst_seconds: float = 6.0
    # USD per 1M prompt / answer tokens for cost accounting; null = llm.model's list price from the
    # built-in table (rolecraft/construct/costs.py); set both for another model
    price_input: Optional[float] = None
    price_output: Optional[float] = None
    # a YAML/JSON price table {model: {input: USD/1M, output: USD/1M}} that extends/overrides the built-in one
    prices_file: Optional[str] = None


@dataclass
class AnnotateConfig:
    # utterances per request (index-aligned JSON answer)
    batch_size: int = 20
    # relabel utterances that already carry a label (e.g. to measure an LLM against gold labels)
    overwrite: bool = False


@dataclass
class ProfileConfig:
    # the profile template: every field must come back as a non-empty string
    fields: List[str] = field(default_factory=lambda: [
        "名字", "年龄", "身高", "体重", "生日", "星座", "性格特点", "背景", "爱好", "特长", "梦想", "关系",
        "喜欢的食物", "讨厌的东西", "说话风格"])
    # rewrite profiles that already have every field (given fields are still kept as known facts)
    overwrite: bool = False
    # characters of emotion-annotated dialogue shown to the model
    dialogue_chars: int = 4000


@dataclass
class QaConfig:
    # requests per character, each with its own script excerpt
    rounds: int = 2
    # Q&A pairs per request (an answer with another count is re-asked)
    questions: int = 5
    # script excerpt size in characters (the paper: at most 1,000, possibly discontinuous)
    excerpt_chars: int = 1000


@dataclass
class GeneralConfig:
    # general instructions: a .jsonl/.json file of {"instruction": ...} or a .txt file (one per line);
    # null = the distinct raw/general instructions of the input dataset
    instructions: Optional[str] = None
    max_instructions: Optional[int] = None
    # answers per (character, instruction) (the paper: 5), one request each
    answers: int = 1
    # few-shot question/answer pairs from the character's specific samples (the paper: 3)
    shots: int = 3
    # an answer longer than this is re-asked as too verbose
    max_chars: int = 400
    # answer pairs that already exist again
    overwrite: bool = False


@dataclass
class ConstructSection:
    # the RoleInstruct dataset to enrich (a directory or embedded:demo)
    input: str = "embedded:demo"
    # the enriched dataset directory (written atomically at the end); null = <run dir>/dataset
    out: Optional[str] = None
    # the SQLite journal of answers, keyed by (model, prompt hash, parameters); null = <cache_dir>/construct_journal.sqlite
    journal: Optional[str] = None
    # print sample prompts and the estimated tokens and cost; call nothing
    dry_run: bool = False
    # only these characters (empty = all)
    characters: List[str] = field(default_factory=list)
    # an answer that fails validation is re-asked (with the reason) up to this many tries in total
    max_attempts: int = 3
    progress: bool = True
    # write construct.out even when it is an existing non-empty directory that this tool did not write
    force: bool = False
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    qa: QaConfig = field(default_factory=QaConfig)
    general: GeneralConfig = field(default_factory=GeneralConfig)


@dataclass
class ConstructConfig:
    # annotate | profile | qa | general | all (in that order)
    stage: str = "all"
    construct: ConstructSection = field(default_factory=ConstructSection)
    llm: LlmConfig = field(default_factory=LlmConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    # seeds the choice of script excerpts and few-shot examples
    seed: int = 0
    # true: only warnings and errors on stderr, no progress bars (stdout is unchanged)
    quiet: bool = False


# ---- chat.py ---------------------------------------------------------------------------------


@dataclass
class ChatGenerationConfig(GenerationConfig):
    # chat samples with the paper's decoding settings (top_p 0.7, temperature 0.95)
    do_sample: bool = True
    max_new_tokens: int = 256
    share_prefix: bool = False
    drop_finished: bool = False
    continuous: bool = False


@dataclass
class ChatDataConfig:
    root: str = "embedded:demo"


@dataclass
class ChatConfig:
    # who answers: run (a train.py run directory) | model (a base model preset, zero-shot) | openai
    source: ChatSource = ChatSource.run
    # source=run: the run directory (its adapter, base model, data, emotions and retrieval settings)
    run: Optional[str] = None
    # the character to play (null = the first of the dataset); /character NAME switches
    character: Optional[str] = None
    # source=model/openai: the dataset whose characters can be played, data.root=DIR as in train.py
    # (source=run: the run's). A node, not a plain string: `data=` on the command line names the data group
    data: ChatDataConfig = field(default_factory=lambda: ChatDataConfig())
    # the character prompt (source=run: the run's recorded spec unless typed on the command line)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    # characters of conversation kept (oldest turns are dropped first); the system prompt is extra
    history_budget: int = 2000
    # start from a recorded conversation: JSON list / {"messages": [...]} (what /save writes) / JSONL of
    # {"role", "content", "name"?} messages; a leading system turn is the scene
    replay: Optional[str] = None
    generation: ChatGenerationConfig = field(default_factory=ChatGenerationConfig)
    # source=model (and the base of source=run is the run's own)
    model: ModelConfig = field(default_factory=ModelConfig)
    # source=openai: the chat model and endpoint (tokens stream as they arrive)
    openai_model: str = "gpt-4"
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    device: Optional[str] = None
    seed: int = 42
    paths: PathsConfig = field(default_factory=PathsConfig)
    # true: only warnings and errors on stderr, no progress bars (the conversation on stdout is unchanged)
    quiet: bool = False


SCHEMAS = {"train_schema": TrainConfig, "evaluate_schema": EvaluateConfig, "construct_schema": ConstructConfig,
           "chat_schema": ChatConfig}


def register(*names: str) -> None:
    """Register schemas (default: all) so the entry configs under `conf/` are type-checked.

    Each entry point registers only its own: Hydra deep-copies every stored schema for each
    config group it lists in ``--help``, so every extra schema slows every entry point's help.
    """
    cs = ConfigStore.instance()
    for name in names or tuple(SCHEMAS):
        cs.store(name=name, node=SCHEMAS[name])
