"""BiLSTM sequence tagger (NER, POS): word + case + character-CNN features, optional CRF."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlp.batching import sequence_mask
from nlp.crf import CRF
from nlp.vocab import N_CASE_FEATURES, PAD_ID


@dataclass(frozen=True)
class BiLSTMTaggerConfig:
    """Architecture; vocabulary and tag counts come from the training data."""

    vocab_size: int = 0
    char_vocab_size: int = 0
    num_tags: int = 0
    embedding_dim: int = 100
    case_dim: int = 8
    char_dim: int = 30
    char_channels: int = 64
    char_kernel: int = 3
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.5
    use_chars: bool = True
    use_crf: bool = True
    # Frozen word vectors from outside the training data (nlp/word_vectors.py); 0: none.
    vector_vocab_size: int = 0
    vector_dim: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.char_kernel < 1 or self.char_kernel % 2 == 0:
            raise ValueError(f"char_kernel must be odd and >= 1, got {self.char_kernel}")
        for name in ("embedding_dim", "hidden_size", "num_layers", "char_dim", "char_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CharCNN(nn.Module):
    """One vector per word from its characters: convolution then max over real characters."""

    def __init__(self, vocab_size: int, dim: int, channels: int, kernel: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        self.conv = nn.Conv1d(dim, channels, kernel, padding=kernel // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """[B, T, C] char ids -> [B, T, channels]."""
        b, t, c = chars.shape
        flat = chars.reshape(b * t, c)
        x = self.embedding(flat).transpose(1, 2)  # [B*T, C, E] -> [B*T, E, C]
        h = self.conv(x)  # [B*T, channels, C]
        real = (flat != PAD_ID)[:, None, :]
        h = h.masked_fill(~real, float("-inf")).max(dim=2).values  # [B*T, channels]
        h = torch.where(real.any(dim=2), h, torch.zeros_like(h))  # padding words -> 0
        return h.reshape(b, t, -1)


class BiLSTMTagger(nn.Module):
    """Per-token tag scores (emissions); a CRF on top when ``use_crf``."""

    def __init__(self, config: BiLSTMTaggerConfig) -> None:
        super().__init__()
        if config.vocab_size < 3 or config.num_tags < 1:
            raise ValueError("vocab_size (>= 3) and num_tags (>= 1) come from the training data")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        self.case = nn.Embedding(N_CASE_FEATURES, config.case_dim, padding_idx=0)
        features = config.embedding_dim + config.case_dim
        self.vectors: nn.Embedding | None = None
        if config.vector_dim > 0:
            # Filled by the tagger from the vector table and never trained, so a word the
            # training data lacks is represented like the words it resembles.
            self.vectors = nn.Embedding(config.vector_vocab_size, config.vector_dim)
            self.vectors.weight.requires_grad_(False)
            features += config.vector_dim
        self.chars: CharCNN | None = None
        if config.use_chars:
            self.chars = CharCNN(
                max(config.char_vocab_size, 3),
                config.char_dim,
                config.char_channels,
                config.char_kernel,
            )
            features += config.char_channels
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            features,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(2 * config.hidden_size, config.num_tags)
        self.crf = CRF(config.num_tags) if config.use_crf else None

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Emissions [B, T, K] from ``ids``, ``case`` (and ``vec``) [B, T], ``chars`` [B, T, C],
        ``lengths``."""
        ids, lengths = batch["ids"], batch["lengths"]
        parts = [self.embedding(ids), self.case(batch["case"])]  # [B, T, E], [B, T, Ec]
        if self.chars is not None:
            parts.append(self.chars(batch["chars"]))  # [B, T, channels]
        if self.vectors is not None:
            parts.append(self.vectors(batch["vec"]))  # [B, T, Ev]
        x = self.dropout(torch.cat(parts, dim=-1))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        seq, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return self.head(self.dropout(seq))  # [B, T, 2H] -> [B, T, K]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """CRF negative log-likelihood per sentence, or cross-entropy per real token."""
        emissions = self(batch)
        mask = sequence_mask(batch["lengths"].to(emissions.device), emissions.shape[1])
        if self.crf is not None:
            return -self.crf.log_likelihood(emissions, batch["tags"], mask).mean()
        return nn.functional.cross_entropy(emissions.float()[mask], batch["tags"][mask])

    @torch.no_grad()
    def decode(self, batch: dict[str, torch.Tensor]) -> list[list[int]]:
        """Best tag ids per sequence (Viterbi with a CRF, else per-token argmax)."""
        emissions = self(batch)
        mask = sequence_mask(batch["lengths"].to(emissions.device), emissions.shape[1])
        if self.crf is not None:
            return self.crf.decode(emissions, mask)
        best = emissions.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, batch["lengths"].tolist(), strict=True)]
