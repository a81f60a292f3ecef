"""Training: Lightning trainer and loggers from config, and the train-then-evaluate run."""
