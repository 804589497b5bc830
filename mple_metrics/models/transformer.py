"""Pre-norm Transformer building blocks shared by the AT and NAT models.

Shapes: B batch, S source length, T target length, d model width, H heads.  Padding masks are
boolean with ``True`` at padded positions.  Attention uses ``F.scaled_dot_product_attention``.
Incremental (step-by-step) decoding keeps each decoder layer's keys/values in a
:class:`LayerCache`; cross-attention keys/values are computed once per source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig


def padding_mask(lengths: Tensor, width: int) -> Tensor:
    """(B, width) bool, True where position >= length (padding)."""
    return torch.arange(width, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


def sinusoidal_table(num_positions: int, dim: int) -> Tensor:
    """(num_positions, dim) float32 sinusoidal position table (Vaswani et al. 2017)."""
    half = dim // 2
    scale = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -scale)
    angles = torch.arange(num_positions, dtype=torch.float32).unsqueeze(1) * freqs.unsqueeze(0)
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(num_positions, 1)], dim=1)
    return table


class PositionEmbedding(nn.Module):
    """Learned or sinusoidal position embeddings for positions ``offset .. offset + T - 1``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.max_positions = config.max_positions
        self.learned = config.positions == "learned"
        if self.learned:
            self.weight = nn.Parameter(torch.randn(config.max_positions, config.d_model) * config.d_model ** -0.5)
        else:
            self.register_buffer("weight", sinusoidal_table(config.max_positions, config.d_model),
                                 persistent=False)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        """(length, d) embeddings of positions offset..offset+length-1."""
        if offset + length > self.max_positions:
            raise ValueError(f"sequence of {offset + length} positions exceeds max_positions="
                             f"{self.max_positions}; filter long sentences or raise max_positions")
        return self.weight[offset:offset + length]


@dataclass
class LayerCache:
    """Keys/values of one decoder layer for incremental decoding.

    ``self_k``/``self_v``: (N, H, t, d/H) for the t tokens decoded so far; ``cross_k``/``cross_v``:
    (N, H, S, d/H) from the encoder output, computed once."""

    self_k: Tensor | None = None
    self_v: Tensor | None = None
    cross_k: Tensor | None = None
    cross_v: Tensor | None = None

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` (beam search reordering), in place."""
        for name in ("self_k", "self_v", "cross_k", "cross_v"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, index))


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float, self_attention: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.self_attention = self_attention
        if self_attention:
            self.qkv = nn.Linear(d_model, 3 * d_model)
        else:
            self.q = nn.Linear(d_model, d_model)
            self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> Tensor:  # (N, L, d) -> (N, H, L, d/H)
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(memory).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(self, x: Tensor, memory: Tensor | None = None, key_padding: Tensor | None = None,
                causal: bool = False, cache: LayerCache | None = None) -> Tensor:
        """x (N, L, d) -> (N, L, d).  ``key_padding`` (N, L_k) True = ignore that key.  With
        ``cache`` (incremental decoding) self-attention appends this step's keys/values and
        cross-attention reuses the cached ones."""
        if self.self_attention:
            q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
            if cache is not None:
                if cache.self_k is not None:
                    k = torch.cat([cache.self_k, k], dim=2)
                    v = torch.cat([cache.self_v, v], dim=2)
                cache.self_k, cache.self_v = k, v
                causal = False  # the new query may see every cached key
        else:
            q = self._heads(self.q(x))
            if cache is not None and cache.cross_k is not None:
                k, v = cache.cross_k, cache.cross_v
            else:
                assert memory is not None
                k, v = self.project_kv(memory)
                if cache is not None:
                    cache.cross_k, cache.cross_v = k, v
        mask = None
        if key_padding is not None:
            mask = ~key_padding[:, None, None, :]  # SDPA: True = attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class EncoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.attn_norm = nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, config.n_heads, config.attention_dropout, self_attention=True)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = FeedForward(d, config.ffn_dim, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), key_padding=pad))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.self_norm = nn.LayerNorm(d)
        self.self_attn = MultiHeadAttention(d, config.n_heads, config.attention_dropout, self_attention=True)
        self.cross_norm = nn.LayerNorm(d)
        self.cross_attn = MultiHeadAttention(d, config.n_heads, config.attention_dropout, self_attention=False)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = FeedForward(d, config.ffn_dim, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, memory: Tensor, memory_pad: Tensor, self_pad: Tensor | None,
                causal: bool, cache: LayerCache | None = None) -> Tensor:
        x = x + self.dropout(self.self_attn(self.self_norm(x), key_padding=self_pad, causal=causal,
                                            cache=cache))
        x = x + self.dropout(self.cross_attn(self.cross_norm(x), memory=memory, key_padding=memory_pad,
                                             cache=cache))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


@dataclass
class EncoderOut:
    """Encoder result: ``out`` (B, S, d) after the final layer norm; ``pad`` (B, S) bool;
    ``embedded`` (B, S, d) the scaled source token embeddings (what NAT copy inputs copy);
    ``lengths`` (B,) int64."""

    out: Tensor
    pad: Tensor
    embedded: Tensor
    lengths: Tensor

    def index_select(self, index: Tensor) -> EncoderOut:
        return EncoderOut(self.out.index_select(0, index), self.pad.index_select(0, index),
                          self.embedded.index_select(0, index), self.lengths.index_select(0, index))


class Seq2SeqBase(nn.Module):
    """Embeddings, encoder, decoder stack and output projection common to AT and NAT."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.embed_scale = math.sqrt(d)
        self.tgt_embed = nn.Embedding(config.tgt_vocab_size, d)
        self.src_embed = self.tgt_embed if config.share_embeddings else nn.Embedding(config.src_vocab_size, d)
        self.src_positions = PositionEmbedding(config)
        self.tgt_positions = PositionEmbedding(config)
        self.encoder_layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.decoder_layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(config.dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for embed in {id(self.src_embed): self.src_embed, id(self.tgt_embed): self.tgt_embed}.values():
            nn.init.normal_(embed.weight, std=self.config.d_model ** -0.5)

    def check_tokens(self, tokens: Tensor, lengths: Tensor, name: str, vocab: int) -> None:
        if tokens.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != tokens.shape[0]:
            raise ValueError(f"{name} must be (B, L) with {name}_lengths (B,), got {tuple(tokens.shape)} "
                             f"and {tuple(lengths.shape)}")
        if tokens.dtype != torch.int64:
            raise TypeError(f"{name} must be int64 token ids, got {tokens.dtype}")

    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        """src (B, S) int64, src_lengths (B,) -> :class:`EncoderOut`."""
        self.check_tokens(src, src_lengths, "src", self.config.src_vocab_size)
        pad = padding_mask(src_lengths, src.shape[1])
        embedded = self.src_embed(src) * self.embed_scale
        x = self.dropout(embedded + self.src_positions(src.shape[1]))
        for layer in self.encoder_layers:
            x = layer(x, pad)
        return EncoderOut(self.encoder_norm(x), pad, embedded, src_lengths)

    def run_decoder(self, x: Tensor, enc: EncoderOut, self_pad: Tensor | None, causal: bool,
                    caches: list[LayerCache] | None = None) -> Tensor:
        """Decoder stack on input embeddings x (N, T, d) (positions already added) -> hidden
        states (N, T, d) after the final layer norm."""
        x = self.dropout(x)
        for i, layer in enumerate(self.decoder_layers):
            x = layer(x, enc.out, enc.pad, self_pad, causal, None if caches is None else caches[i])
        return self.decoder_norm(x)

    def output_logits(self, hidden: Tensor) -> Tensor:
        """(…, d) -> (…, V) unnormalised scores (projection tied to the target embedding)."""
        return F.linear(hidden, self.tgt_embed.weight)
