"""Sampling's parts: `backends` (transformers and vLLM drawing from one documented distribution), `flags` (what a
sample is), `replicas` (data-parallel workers). The stage that uses them, with its plan, shards and manifest, is
`simplesd.sample`."""
