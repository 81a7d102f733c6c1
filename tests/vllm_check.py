"""Run in a subprocess by test_vllm.py (vLLM needs the __main__ guard): load MODEL with vLLM, decode greedily,
and print the token ids and their log-probabilities as JSON."""

import json
import sys

if __name__ == "__main__":
    from vllm import LLM, SamplingParams

    model, prompts_json, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    llm = LLM(model=model, dtype="float32", gpu_memory_utilization=0.3, max_model_len=512, seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, logprobs=1)
    outs = llm.generate(json.loads(prompts_json), params)
    result = [{"token_ids": list(o.outputs[0].token_ids),
               "logprobs": [lp[t].logprob for t, lp in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)]}
              for o in outs]
    print("RESULT " + json.dumps(result))
