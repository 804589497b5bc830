"""The paper's own numbers that the demo's tables are printed beside (Huang et al., ICML 2022;
WMT14 En-De and friends with Transformer-base models, so only orderings and signs compare)."""

from __future__ import annotations

#: Table 1: dataset, C (bits/token), ΔBLEU, BLEU_AT, BLEU_NAT.
TABLE1: tuple[tuple[str, float, float, float, float], ...] = (
    ("WMT14 En-De", 2.50, 15.32, 27.11, 11.79),
    ("WMT16 En-Ro", 2.20, 9.98, 33.70, 23.72),
    ("Synthetic B", 1.51, 5.66, 20.97, 15.31),
    ("Synthetic A", 0.92, 0.35, 26.96, 26.61),
)

#: Table 2 (WMT14 En-De, vanilla input): method, L_NAT, L_target, L_MPLE, BLEU.
TABLE2: tuple[tuple[str, float, float, float, float], ...] = (
    ("Raw Data", 4.41, -6.42, -2.01, 11.79),
    ("KD", 2.42, -7.08, -4.66, 20.87),
    ("+ AXE (τ=1)", 0.78, -5.13, -4.35, 18.56),
    ("+ AXE (τ=5)", 1.09, -6.34, -5.25, 22.22),
    ("+ AXE (τ=10)", 1.25, -6.50, -5.26, 22.35),
    ("+ OaXE (10k)", 1.03, -4.41, -3.38, 15.00),
    ("+ OaXE (50k)", 0.79, -5.84, -5.06, 21.37),
    ("+ OaXE (300k)", 0.83, -6.28, -5.44, 22.76),
)
TABLE2_R = -0.99  # the paper reports |r| = 0.99; lower L_MPLE goes with higher BLEU

#: Table 3 (WMT14 En-De, KD targets, L_target = -7.08): method, L_input, L_NAT, L_MPLE, Sample, Default BLEU.
TABLE3: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("Vanilla", 0.0, 2.42, -4.66, 20.87, 20.87),
    ("CMLM", 0.99, 0.46, -5.63, 23.48, 19.39),
    ("+ fixed masking ratio", 0.48, 0.55, -6.05, 24.28, 19.35),
    ("GLAT", 0.45, 0.66, -5.96, 23.98, 25.12),
    ("+ Levenshtein dist.", 0.41, 0.73, -5.94, 24.03, 24.84),
    ("+ mask by P_ref", 0.25, 1.24, -5.59, 22.98, 24.22),
    ("+ mask by 1 - P_ref", 0.57, 0.50, -6.01, 24.35, 25.19),
)
TABLE3_R_SAMPLE, TABLE3_R_DEFAULT = -0.99, -0.37  # |r| as reported; the sign is that of Table 2

#: Table 9 (WMT14 En-De, vanilla NAT rows): method, BLEU.
TABLE9_VANILLA: tuple[tuple[str, float], ...] = (
    ("Vanilla + KD", 20.98), ("+ Dynamic KD w/o Regularizer", 20.51), ("+ Dynamic KD", 22.82))

FIGURE1 = ("GLAT+KD and MLE fine-tunes of one NAT checkpoint (10k steps, WMT14 En-De valid): MLE reaches the "
           "higher log-likelihood, GLAT+KD the higher BLEU.")
