"""The recurrent forecaster's forward pass, shared by the RNN, LSTM and GRU models.

The window is normalised (see ``RecurrentForecasterConfig.normalize``), read by a stacked,
optionally bidirectional encoder (step by step or in segments of ``patch_len`` steps, with
known and past-only covariates and static features of the series, a learned embedding and
attribute values, beside the values), and turned into
``horizon`` steps by a direct linear head or a recurrent decoder, which read the known
covariates over the horizon and never the past-only ones. Outputs are [B, H, Q]: Q = 1 for a point
forecast, one per quantile otherwise. Each cell file (rnn.py, lstm.py, gru.py) only names its
recurrent layer and how to initialise it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from forecasting.models.config import RecurrentForecasterConfig
from forecasting.models.decoder import RecurrentDecoder


class RecurrentForecaster(nn.Module):
    """Encoder + head over one input window. Subclasses set the recurrent layer classes."""

    layer_class: ClassVar[type[nn.LSTM] | type[nn.GRU] | type[nn.RNN]]
    decoder_cell_class: ClassVar[type[nn.Module]]
    gates: ClassVar[int]  # weight blocks per recurrent matrix (4 LSTM, 3 GRU, 1 RNN)

    def __init__(self, config: RecurrentForecasterConfig) -> None:
        super().__init__()
        self.config = c = config
        emb = c.embedding_dim if c.n_series and c.embedding_dim else 0
        self.embedding = nn.Embedding(c.n_series, emb) if emb else None
        # Static attributes of every series (fixed when fitted, saved with the weights).
        self.static_table: torch.Tensor | None
        table = torch.zeros(c.n_series, c.n_static) if c.n_static else None
        self.register_buffer("static_table", table)  # None: not in the state dict
        emb += c.n_static  # what every step, the head and the decoder read of the series
        step_size = c.patch_len * (1 + c.n_covariates + c.n_past_covariates) + emb
        # A segment of several steps is projected first; single steps go straight in.
        self.patch_proj = nn.Linear(step_size, c.hidden_size) if c.patch_len > 1 else None
        dirs = 2 if c.bidirectional else 1
        in_size = c.hidden_size if self.patch_proj is not None else step_size
        self.layers = nn.ModuleList()
        for layer in range(c.num_layers):
            self.layers.append(
                self.layer_class(
                    input_size=in_size if layer == 0 else dirs * c.hidden_size,
                    hidden_size=c.hidden_size,
                    batch_first=True,
                    bidirectional=c.bidirectional,
                )
            )
        self.norms = (
            nn.ModuleList(nn.LayerNorm(dirs * c.hidden_size) for _ in range(c.num_layers))
            if c.layer_norm
            else None
        )
        self.dropout = nn.Dropout(c.dropout)
        enc_dim = dirs * c.hidden_size
        self.head: nn.Linear | None = None
        self.decoder: RecurrentDecoder | None = None
        if c.head == "direct":
            head_in = enc_dim + c.horizon * c.n_covariates + emb
            self.head = nn.Linear(head_in, c.horizon * c.n_outputs)
        else:
            self.decoder = RecurrentDecoder(self.decoder_cell_class, c, enc_dim, emb)
        self._init_weights()

    def _init_weights(self) -> None:
        # Orthogonal recurrent weights (one block per gate) keep the recurrent Jacobian's
        # singular values near 1, so gradients flow through long windows early in training.
        for name, param in self.named_parameters():
            if "weight_hh" in name:
                for gate in param.data.chunk(self.gates):
                    nn.init.orthogonal_(gate)
            elif "weight_ih" in name:
                nn.init.xavier_uniform_(param.data)
            elif "bias_ih" in name or "bias_hh" in name:
                nn.init.zeros_(param.data)
                self.init_gate_bias(param.data)

    def init_gate_bias(self, bias: torch.Tensor) -> None:
        """Cell-specific bias initialisation (the LSTM opens its forget gate)."""

    def _norm_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.normalize == "level":
            return x[:, -1:], torch.ones_like(x[:, -1:])
        if self.config.normalize == "window":
            return x.mean(1, keepdim=True), x.std(1, keepdim=True) + 1e-3
        return torch.zeros_like(x[:, -1:]), torch.ones_like(x[:, -1:])

    def _static(self, series: torch.Tensor | None) -> torch.Tensor | None:
        """[B] series index -> [B, E + A]: its learned embedding and its attribute values."""
        parts = []
        if self.embedding is not None:
            assert series is not None, "this model was configured with a series embedding"
            parts.append(self.embedding(series))  # [B, E]
        if self.static_table is not None:
            assert series is not None, "this model was configured with static attributes"
            parts.append(self.static_table[series])  # [B, A]
        return torch.cat(parts, dim=-1) if parts else None

    def _encode(self, steps: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, D]: the top layer's state after reading the whole window."""
        out = steps
        for i, layer in enumerate(self.layers):
            out, _ = layer(out)  # [B, T, dirs * hidden]
            if self.norms is not None:
                out = self.norms[i](out)
            if i < len(self.layers) - 1:
                out = self.dropout(out)
        h = self.config.hidden_size
        if self.config.bidirectional:
            # Forward direction ends at the last step, the backward one at the first.
            return torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=-1)
        return out[:, -1]

    def forward(
        self,
        x: torch.Tensor,
        cov: torch.Tensor | None = None,
        series: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Forecast ``horizon`` steps.

        Args:
            x: [B, W] scaled input window.
            cov: [B, W + H, C + K] covariates over the window and the horizon: C known in
                the future, then K past-only (their horizon rows are never read).
            series: [B] int64 series index (for the embedding).
            y: [B, H] targets, used only by the seq2seq decoder while training.

        Returns:
            [B, H, Q] scaled forecasts (Q quantiles, or 1).
        """
        c = self.config
        b, w = x.shape
        level, scale = self._norm_stats(x)  # [B, 1] each
        z = (x - level) / scale  # [B, W]
        feats = z.unsqueeze(-1)  # [B, W, 1]
        n_cov = c.n_covariates + c.n_past_covariates
        if n_cov:
            assert cov is not None and cov.shape[-1] == n_cov, (
                f"this model needs {n_cov} covariates"
            )
            feats = torch.cat([feats, cov[:, :w]], dim=-1)  # [B, W, 1 + C + K]
        steps = feats.reshape(b, w // c.patch_len, -1)  # [B, W/P, P * (1 + C + K)]
        static = self._static(series)  # [B, E + A] or None
        if static is not None:
            steps = torch.cat([steps, static[:, None].expand(-1, steps.shape[1], -1)], dim=-1)
        if self.patch_proj is not None:
            steps = torch.relu(self.patch_proj(steps))  # [B, W/P, hidden]
        summary = self._encode(steps)  # [B, D]
        # Only the known covariates go past the origin: past-only ones stop at the window.
        future = cov[:, w:, : c.n_covariates] if c.n_covariates and cov is not None else None
        base = (
            z[:, w - c.seasonal_skip : w - c.seasonal_skip + c.horizon] if c.seasonal_skip else None
        )
        if self.head is not None:
            parts = [summary]
            if future is not None:
                parts.append(future.flatten(1))
            if static is not None:
                parts.append(static)
            out = self.head(torch.cat(parts, dim=-1)).view(b, c.horizon, c.n_outputs)
            if base is not None:
                out = out + base.unsqueeze(-1)
        else:
            assert self.decoder is not None
            teacher = (y - level) / scale if self.training and y is not None else None
            out = self.decoder(summary, z[:, -1], future, static, base, teacher)
        return out * scale.unsqueeze(-1) + level.unsqueeze(-1)  # [B, H, Q]
