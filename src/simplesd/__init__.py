"""simplesd: Simple Self-Distillation (Zhang et al. 2026) for code LLMs.

Sample from the frozen model at T_train with truncation, filter barely, fine-tune on the model's own samples,
decode at a separately tuned T_eval. Stages: `sample`, `filter`, `train`, `pipeline` (see the README).
"""

__version__ = "0.1.0"
