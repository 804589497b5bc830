"""Autoregressive Transformer (AT): causal decoder, teacher forcing, incremental decoding.

Targets in batches are the bare token ids ``y_1..y_T`` (no bos/eos); the model reads
``<s> y_1 .. y_T`` and predicts ``y_1 .. y_T </s>``, so its scores include the end of sentence.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import BOS_ID, EOS_ID, PAD_ID
from .config import ModelConfig
from .transformer import EncoderOut, LayerCache, Seq2SeqBase, padding_mask


def teacher_forcing(tgt: Tensor, tgt_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Decoder input ``<s> y`` and output ``y </s>`` (both (B, T+1), padded with PAD_ID)."""
    batch = tgt.shape[0]
    bos = torch.full((batch, 1), BOS_ID, dtype=tgt.dtype, device=tgt.device)
    inputs = torch.cat([bos, tgt], dim=1)
    outputs = torch.cat([tgt, torch.full_like(bos, PAD_ID)], dim=1)
    outputs.scatter_(1, tgt_lengths.unsqueeze(1), EOS_ID)
    pad = padding_mask(tgt_lengths + 1, tgt.shape[1] + 1)
    return inputs.masked_fill(pad, PAD_ID), outputs.masked_fill(pad, PAD_ID)


class ATModel(Seq2SeqBase):
    """Encoder-decoder Transformer with a causal decoder."""

    def __init__(self, config: ModelConfig) -> None:
        if config.kind != "at":
            raise ValueError(f"ATModel needs a config with kind='at', got {config.kind!r}")
        super().__init__(config)

    def decode_full(self, prev_tokens: Tensor, enc: EncoderOut) -> Tensor:
        """Teacher-forced decoder: prev_tokens (B, T') -> logits (B, T', V)."""
        x = self.tgt_embed(prev_tokens) * self.embed_scale + self.tgt_positions(prev_tokens.shape[1])
        return self.output_logits(self.run_decoder(x, enc, None, causal=True))

    def forward(self, src: Tensor, src_lengths: Tensor, tgt: Tensor, tgt_lengths: Tensor) -> Tensor:
        """Teacher-forced logits (B, T+1, V) for the outputs ``y </s>`` of :func:`teacher_forcing`."""
        self.check_tokens(tgt, tgt_lengths, "tgt", self.config.tgt_vocab_size)
        inputs, _ = teacher_forcing(tgt, tgt_lengths)
        return self.decode_full(inputs, self.encode(src, src_lengths))

    def new_caches(self) -> list[LayerCache]:
        return [LayerCache() for _ in self.decoder_layers]

    def decode_step(self, tokens: Tensor, step: int, enc: EncoderOut, caches: list[LayerCache]) -> Tensor:
        """One incremental step: tokens (N,) at position ``step`` -> logits (N, V).

        ``caches`` (from :meth:`new_caches`) hold the keys/values of steps ``0..step-1`` and are
        extended in place; equal to :meth:`decode_full` on the whole prefix."""
        x = self.tgt_embed(tokens.unsqueeze(1)) * self.embed_scale + self.tgt_positions(1, offset=step)
        return self.output_logits(self.run_decoder(x, enc, None, causal=False, caches=caches))[:, 0]
