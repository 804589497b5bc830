"""Non-autoregressive Transformer (NAT, Gu et al. 2018): non-causal decoder, copy input, length
predictor, a mask-token input path (CMLM, GLAT) and a binary "is masked" head (the input
predictor of the paper's Appendix E.6).

The decoder input for a target of length T is, per position j:

* ``"mask"``: the ``<mask>`` embedding (CMLM's fully masked input);
* ``"uniform"`` copy: the source token embedding at position ``round(j (S-1)/(T-1))``;
* ``"soft"`` copy: ``sum_i softmax_i(-|i - j S/T| / tau) e_i`` over the S source embeddings;
* with ``input_tokens`` (CMLM): the target embedding of ``input_tokens[j]`` (``MASK_ID`` where hidden);
* with ``input_tokens`` and ``reveal`` (GLAT, and CMLM with ``"mask"``): the target embedding where
  ``reveal`` is True, the input above elsewhere.

Position embeddings are then added.  The length predictor classifies ``T - S`` from the
mean-pooled encoder output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import MASK_ID
from .config import ModelConfig
from .transformer import EncoderOut, Seq2SeqBase, padding_mask


@dataclass
class NATOutput:
    """``logits`` (B, T, V) token scores; ``length_logits`` (B, 2K+1) scores of ``T - S`` offsets
    (class c means offset c - K); ``mask_logits`` (B, T) "is masked" scores (only when asked);
    ``pad`` (B, T) bool, True at padded target positions."""

    logits: Tensor
    length_logits: Tensor
    mask_logits: Tensor | None
    pad: Tensor


def uniform_copy_index(src_lengths: Tensor, tgt_lengths: Tensor, width: int) -> Tensor:
    """(B, width) int64 source position copied to each target position (0 beyond the length)."""
    j = torch.arange(width, device=src_lengths.device, dtype=torch.float64).unsqueeze(0)
    step = (src_lengths - 1).double() / (tgt_lengths - 1).clamp(min=1).double()
    index = torch.round(j * step.unsqueeze(1)).long()
    return index.clamp(max=(src_lengths - 1).unsqueeze(1).clamp(min=0)).masked_fill(
        padding_mask(tgt_lengths, width), 0)


class NATModel(Seq2SeqBase):
    """Encoder-decoder Transformer with a non-causal decoder and a length predictor."""

    def __init__(self, config: ModelConfig) -> None:
        if config.kind != "nat":
            raise ValueError(f"NATModel needs a config with kind='nat', got {config.kind!r}")
        super().__init__(config)
        self.length_head = nn.Linear(config.d_model, config.num_length_classes)
        self.mask_head = nn.Linear(config.d_model, 1)
        nn.init.xavier_uniform_(self.length_head.weight)
        nn.init.zeros_(self.length_head.bias)
        nn.init.xavier_uniform_(self.mask_head.weight)
        nn.init.zeros_(self.mask_head.bias)

    # ------------------------------------------------------------------ length
    def length_logits(self, enc: EncoderOut) -> Tensor:
        """(B, 2K+1) scores of the offset ``T - S`` from the mean-pooled encoder output."""
        keep = (~enc.pad).unsqueeze(-1).to(enc.out.dtype)
        pooled = (enc.out * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.length_head(pooled)

    def length_targets(self, src_lengths: Tensor, tgt_lengths: Tensor) -> Tensor:
        """(B,) class of ``T - S``; offsets beyond ±max_length_offset go to the end classes."""
        k = self.config.max_length_offset
        return (tgt_lengths - src_lengths).clamp(-k, k) + k

    def predict_lengths(self, enc: EncoderOut, beam: int = 1, length_factor: float = 0.0) -> tuple[Tensor, Tensor]:
        """Top-``beam`` target lengths (B, beam) int64 (>= 1) and their log-probs (B, beam).

        ``length_factor`` λ scales the predicted length: ``round(T̂ (1 + λ))``."""
        logp = F.log_softmax(self.length_logits(enc).float(), dim=-1)
        # Lengths below 1 are impossible; remove their classes before taking the top-k.
        k = self.config.max_length_offset
        offsets = torch.arange(-k, k + 1, device=logp.device)
        lengths = enc.lengths.unsqueeze(1) + offsets.unsqueeze(0)
        logp = logp.masked_fill(lengths < 1, float("-inf"))
        top_logp, top = logp.topk(min(beam, logp.shape[1]), dim=-1)
        lengths = lengths.gather(1, top)
        if length_factor:
            lengths = torch.round(lengths.double() * (1.0 + length_factor)).long()
        lengths = lengths.clamp(min=1, max=self.config.max_positions)
        return lengths, top_logp

    # ------------------------------------------------------------------ decoder input
    def copy_input(self, enc: EncoderOut, tgt_lengths: Tensor, width: int) -> Tensor:
        """(B, width, d) vanilla decoder input: the source embeddings copied (uniform or soft) or the
        ``<mask>`` embedding (see module docstring)."""
        if self.config.nat_input == "mask":
            mask = self.tgt_embed.weight[MASK_ID] * self.embed_scale
            return mask.expand(enc.out.shape[0], width, -1)
        if self.config.nat_input == "uniform":
            index = uniform_copy_index(enc.lengths, tgt_lengths, width)
            return enc.embedded.gather(1, index.unsqueeze(-1).expand(-1, -1, enc.embedded.shape[-1]))
        src_width = enc.embedded.shape[1]
        j = torch.arange(width, device=enc.out.device, dtype=torch.float32).unsqueeze(0)
        centre = j * (enc.lengths.float() / tgt_lengths.clamp(min=1).float()).unsqueeze(1)  # (B, T)
        i = torch.arange(src_width, device=enc.out.device, dtype=torch.float32)
        score = -(i.view(1, 1, -1) - centre.unsqueeze(-1)).abs() / self.config.soft_copy_tau
        score = score.masked_fill(enc.pad.unsqueeze(1), float("-inf"))
        return torch.softmax(score, dim=-1).to(enc.embedded.dtype) @ enc.embedded

    def decoder_input(self, enc: EncoderOut, tgt_lengths: Tensor, width: int,
                      input_tokens: Tensor | None = None, reveal: Tensor | None = None) -> Tensor:
        """(B, width, d) decoder input embeddings with positions (see module docstring)."""
        if input_tokens is None:
            if reveal is not None:
                raise ValueError("reveal needs input_tokens (the tokens to reveal)")
            x = self.copy_input(enc, tgt_lengths, width)
        else:
            if input_tokens.shape != (enc.out.shape[0], width):
                raise ValueError(f"input_tokens must be (B, T) = {(enc.out.shape[0], width)}, got "
                                 f"{tuple(input_tokens.shape)}")
            x = self.tgt_embed(input_tokens) * self.embed_scale
            if reveal is not None:
                if reveal.shape != input_tokens.shape or reveal.dtype != torch.bool:
                    raise ValueError(f"reveal must be a bool tensor shaped like input_tokens "
                                     f"{tuple(input_tokens.shape)}, got {reveal.dtype} {tuple(reveal.shape)}")
                x = torch.where(reveal.unsqueeze(-1), x, self.copy_input(enc, tgt_lengths, width))
        return x + self.tgt_positions(width)

    # ------------------------------------------------------------------ forward
    def decode_hidden(self, enc: EncoderOut, tgt_lengths: Tensor, width: int,
                      input_tokens: Tensor | None = None, reveal: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Decoder hidden states (B, width, d) before the output projection, and the (B, width)
        padding mask."""
        pad = padding_mask(tgt_lengths, width)
        x = self.decoder_input(enc, tgt_lengths, width, input_tokens, reveal)
        return self.run_decoder(x, enc, pad, causal=False), pad

    def decode(self, enc: EncoderOut, tgt_lengths: Tensor, width: int | None = None,
               input_tokens: Tensor | None = None, reveal: Tensor | None = None,
               with_mask_logits: bool = False) -> NATOutput:
        """Decoder pass for target lengths (B,) -> :class:`NATOutput` of width ``max(tgt_lengths)``
        (or ``width``)."""
        if width is None:
            if input_tokens is not None:
                width = input_tokens.shape[1]
            else:
                width = int(tgt_lengths.max()) if tgt_lengths.numel() else 0
        hidden, pad = self.decode_hidden(enc, tgt_lengths, width, input_tokens, reveal)
        mask_logits = self.mask_head(hidden).squeeze(-1) if with_mask_logits else None
        return NATOutput(self.output_logits(hidden), self.length_logits(enc), mask_logits, pad)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_lengths: Tensor,
                input_tokens: Tensor | None = None, reveal: Tensor | None = None,
                with_mask_logits: bool = False, width: int | None = None,
                mask_features: Tensor | None = None) -> NATOutput:
        """Scores of every target position given the gold (or chosen) lengths (B,).

        ``mask_features`` (B, T, d): decoder states of another pass (e.g. a vanilla-input pass run
        without gradient) to compute ``mask_logits`` from instead of this pass's.  Training the
        "is masked" head on them inside ``forward`` keeps it inside DistributedDataParallel's
        forward, so its gradient is synchronised like every other."""
        if tgt_lengths.dim() != 1 or tgt_lengths.shape[0] != src.shape[0]:
            raise ValueError(f"tgt_lengths must be (B,) = ({src.shape[0]},), got {tuple(tgt_lengths.shape)}")
        if bool((tgt_lengths < 1).any()):
            raise ValueError("tgt_lengths must be >= 1 for a NAT (a zero-length target has no positions)")
        out = self.decode(self.encode(src, src_lengths), tgt_lengths, width, input_tokens, reveal,
                          with_mask_logits and mask_features is None)
        if mask_features is not None:
            out.mask_logits = self.mask_head(mask_features).squeeze(-1)
        return out
