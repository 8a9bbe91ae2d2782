"""LSTM text classifier: embedding, stacked (Bi)LSTM over packed sequences, pooling, linear head."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlp.batching import sequence_mask
from nlp.vocab import PAD_ID


@dataclass(frozen=True)
class LSTMClassifierConfig:
    """Architecture; ``vocab_size`` and ``num_classes`` come from the training data."""

    vocab_size: int = 0
    num_classes: int = 2
    embedding_dim: int = 200
    hidden_size: int = 150
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.3
    pooling: Literal["max", "mean", "last"] = "max"
    # Frozen word vectors from outside the training data (nlp/word_vectors.py); 0: none.
    vector_vocab_size: int = 0
    vector_dim: int = 0

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pooling not in ("max", "mean", "last"):
            raise ValueError(f"pooling must be max, mean or last, got {self.pooling!r}")
        for name in ("embedding_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LSTMClassifier(nn.Module):
    """Logits per document; binary is ``num_classes=2`` (softmax over two logits)."""

    def __init__(self, config: LSTMClassifierConfig) -> None:
        super().__init__()
        if config.vocab_size < 3:
            raise ValueError(f"vocab_size must be >= 3, got {config.vocab_size}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        self.vectors: nn.Embedding | None = None
        if config.vector_dim > 0:
            # Filled by the classifier from the vector table and never trained.
            self.vectors = nn.Embedding(config.vector_vocab_size, config.vector_dim)
            self.vectors.weight.requires_grad_(False)
        self.lstm = nn.LSTM(
            config.embedding_dim + config.vector_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        directions = 2 if config.bidirectional else 1
        self.head = nn.Linear(config.hidden_size * directions, config.num_classes)

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor, vec: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B, T] token ids (and vector-table ids ``vec``), [B] lengths (CPU) -> [B, C]."""
        x = self.embedding(ids)  # [B, T] -> [B, T, E]
        if self.vectors is not None:
            if vec is None:
                raise ValueError("this classifier reads word vectors: pass vec ids")
            x = torch.cat([x, self.vectors(vec)], dim=-1)  # [B, T, E + Ev]
        x = self.dropout(x)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)
        if self.config.pooling == "last":
            # Final states of the top layer, both directions: [L*D, B, H] -> [B, D*H]
            d = 2 if self.config.bidirectional else 1
            pooled = torch.cat(list(h_n[-d:]), dim=-1)
        else:
            seq, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            mask = sequence_mask(lengths.to(seq.device), ids.shape[1])[:, :, None]  # [B, T, 1]
            if self.config.pooling == "max":
                pooled = seq.masked_fill(~mask, float("-inf")).max(dim=1).values  # [B, D*H]
            else:
                pooled = (seq * mask).sum(1) / lengths.to(seq.device)[:, None].clamp(min=1)
        return self.head(self.dropout(pooled))  # [B, D*H] -> [B, C]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy of a batch with ``ids``, ``lengths``, ``labels``."""
        logits = self(batch["ids"], batch["lengths"], batch.get("vec"))
        return nn.functional.cross_entropy(logits.float(), batch["labels"])
