"""Model side: base model loading (hub, local, embedded tiny), LoRA, the LightningModule."""
