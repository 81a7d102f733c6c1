"""simplesd: Simple Self-Distillation (Zhang et al. 2026) for code LLMs.

Sample from the frozen model at T_train with truncation, filter barely, fine-tune on the model's own samples,
decode at a separately tuned T_eval. Every stage is a function that takes the whole config first, then its
inputs and its output directory (docs/api.md):

    import simplesd
    cfg = simplesd.load_config("my.yaml", ["sample.n=2"])
    simplesd.sample(cfg, "runs/x/sample")
    simplesd.filter_samples(cfg, "runs/x/sample", "runs/x/filter")
    simplesd.train(cfg, "runs/x/filter/train.jsonl", "runs/x/train")
    simplesd.evaluate(cfg, "runs/x/train/model", "runs/x/eval")

The names are loaded on first use and the stages import their heavy libraries (torch, transformers, TRL) inside
the functions, so `import simplesd` stays fast.
"""

__version__ = "0.1.0"

import importlib
import sys
import types

# name -> the module that defines it; imported on first use, so `import simplesd` (and every grading worker, which
# imports this package) loads none of the stages
_EXPORTS = {
    "SSDConfig": ".config", "load_config": ".config", "write_config": ".config", "to_yaml": ".config",
    "InputError": ".io", "sample": ".sample", "filter_samples": ".filter", "train": ".train", "evaluate": ".evaluate",
    "check": ".evaluate", "analyze": ".analyze", "decontaminate": ".decontaminate", "run": ".pipeline",
    "sweep": ".sweep", "write_report": ".report", "export": ".share", "push": ".share",
}
__all__ = [*_EXPORTS, "__version__"]


class _Package(types.ModuleType):
    def __getattr__(self, name):
        if name not in _EXPORTS:
            raise AttributeError(f"module 'simplesd' has no attribute {name!r}")
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        super().__setattr__(name, value)
        return value

    def __setattr__(self, name, value):
        # importing the stage module simplesd.sample sets the package's attribute `sample` to that module; the
        # stage function keeps the name (the module stays importable: `from simplesd.sample import ...`)
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(_EXPORTS))


sys.modules[__name__].__class__ = _Package
