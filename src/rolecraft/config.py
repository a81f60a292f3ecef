"""Typed config schema: the single source of truth for every key of `train.py`.

The YAML files under ``conf/`` only choose values; a key not declared here is rejected by Hydra
when the config is composed (before any model loads). Import cost: omegaconf/hydra only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class DataConfig:
    # which instruction samples train: general | specific | hybrid (the paper's Table 6 ablation)
    mix: str = "hybrid"
    # a canonical RoleInstruct directory, or "embedded:demo" (the demo data shipped in the package)
    root: str = "embedded:demo"
    # hybrid only: share of specific samples in the training mix; null keeps every sample of both kinds
    specific_ratio: Optional[float] = None
    # raw (out-of-character) answers also train (off: RAW measures general ability kept, not taught)
    train_on_raw: bool = False
    # script exemplars of the character shown in the system prompt (0 = profile only)
    num_exemplars: int = 6
    # the authors' script: source 1024, target 128 tokens; prompts longer are cut from the left, and counted
    max_source_length: int = 1024
    max_target_length: int = 128
    max_train_samples: Optional[int] = None
    # per kind (raw/general/specific), for quick evaluation; null = whole split
    max_eval_samples: Optional[int] = None
    # speed (issue 7): bucket samples of similar length into the same batch
    group_by_length: bool = True
    num_workers: int = 0


@dataclass
class EmotionsConfig:
    # whether emotion labels appear in what the model sees (the paper's Table 5 ablation)
    enabled: bool = True


@dataclass
class ModelConfig:
    # preset name, for records only
    name: str = "tiny"
    # a hub id, a local directory, or "embedded:tiny" (built on first use from the demo corpus)
    name_or_path: str = "embedded:tiny"
    trust_remote_code: bool = False
    # auto | float32 | bfloat16 | float16
    dtype: str = "float32"
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


@dataclass
class LoraConfig:
    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    # null = the model preset's lora_targets
    target_modules: Optional[List[str]] = None
    bias: str = "none"


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
    scheduler: str = "constant"
    warmup_steps: int = 0
    gradient_clip_val: float = 1.0


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    # auto | ddp | ddp_spawn | fsdp | deepspeed_stage_2 ... (Lightning strategy names)
    strategy: str = "auto"
    # ddp process-group backend: null = Lightning's choice (nccl on GPU, gloo on CPU)
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


@dataclass
class GenerationConfig:
    # evaluation is greedy (reproducible); chat uses do_sample with the paper's top_p/temperature
    do_sample: bool = False
    temperature: float = 0.95
    top_p: float = 0.7
    max_new_tokens: int = 64
    repetition_penalty: float = 1.0


@dataclass
class RougeConfig:
    # jieba | char
    tokenizer: str = "jieba"
    # f | r | p
    stat: str = "f"
    # max | first
    references: str = "max"
    # none | strip_punct
    postprocess: str = "none"


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
    name: str = "csv"
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
    emotions: EmotionsConfig = field(default_factory=EmotionsConfig)
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


def register() -> None:
    """Register the schema so `conf/train.yaml` (defaults: `- train_schema`) is type-checked."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


register()
