"""Run in a subprocess by test_vllm.py (vLLM needs the __main__ guard): sample with simplesd's vLLM backend
settings (load_engine + vllm_sampling_params) and print, per generated position, the processed distribution
vLLM drew from (its top-k processed log-probabilities; -inf outside the support) as JSON."""

import json
import math
import sys

if __name__ == "__main__":
    from simplesd.config import SSDConfig
    from simplesd.sampling.backends import load_engine, vllm_sampling_params

    model, prompts_json, settings_json = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = SSDConfig()
    cfg.model.name_or_path, cfg.model.dtype, cfg.sample.backend = model, "float32", "vllm"
    all_settings = json.loads(settings_json)
    if any(s.get("decoding") == "ssd_equivalent" for s in all_settings):
        cfg.sample.decoding = "ssd_equivalent"  # the engine loads the control's logits processor
    engine = load_engine(cfg, max_prompt_tokens=400)
    prompts = json.loads(prompts_json)
    ids = engine.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    results = []
    for settings in all_settings:  # one engine, one set of sampling settings after another
        cfg.sample.decoding = "plain"
        for k, v in settings.items():
            setattr(cfg.sample, k, v)
        params = [vllm_sampling_params(cfg.sample.to_decoding(), seed=i, stop_ids=engine.stop_ids, logprobs=cfg.sample.top_k)
                  for i in range(len(prompts))]
        outs = engine.model.generate([{"prompt_token_ids": t} for t in ids], params, use_tqdm=False)
        result = []
        for i, o in enumerate(outs):
            steps = [{"token": tok, "logprobs": {str(t): (None if math.isinf(lp.logprob) else lp.logprob)
                                                 for t, lp in lps.items()}}
                     for tok, lps in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)]
            result.append({"prompt_token_ids": ids[i], "steps": steps})
        results.append(result)
    print("RESULT " + json.dumps(results))
