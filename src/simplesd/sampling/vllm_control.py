"""The no-training control (decoding ssd_equivalent) inside vLLM: its custom logits-processor interface (vLLM v1,
`LLM(logits_processors=[...])`, per-request settings in `SamplingParams.extra_args`).

Declared not argmax-invariant so that vLLM applies it to the raw logits, before its own temperature, top-k and
top-p (vllm/v1/sample/sampler.py); it does not in fact move the argmax (the top token is always in the support),
so greedy requests come out as plain greedy. Rows without the setting pass through untouched. Imported only when
the backend is vLLM and the decoding asks for the control (vLLM's engine process imports it by name).
"""

from __future__ import annotations

from vllm.v1.sample.logits_processor import LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from .control import ControlSupport

KEY = "simplesd_control"  # SamplingParams.extra_args[KEY] = [T_train, top_k, top_p]


class VllmControlSupport(LogitsProcessor):
    def __init__(self, vllm_config, device, is_pin_memory: bool):
        self.rows: dict[int, ControlSupport] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # so it runs before vLLM's temperature (see the module docstring)

    def update_state(self, batch_update) -> None:
        def new_state(params, prompt_ids, output_ids):
            setting = (params.extra_args or {}).get(KEY)
            return ControlSupport(*setting) if setting else None

        process_dict_updates(self.rows, batch_update, new_state)

    def apply(self, logits):
        for row, support in self.rows.items():
            logits[row] = support(None, logits[row:row + 1])[0]
        return logits
