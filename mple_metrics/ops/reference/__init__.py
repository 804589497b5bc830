"""Reference implementations the kernels are tested and benchmarked against.

They favour obviousness over speed: each mirrors the definition in DESIGN.md §3 or delegates to the
established peer (sacrebleu for BLEU, scipy for linear assignment).
"""
