"""A linear-chain CRF: log-likelihood by the forward algorithm, decoding by Viterbi.

Batch-first; ``mask`` is True on real tokens and every sequence has at least one token.
Computed in float32 whatever autocast chose for the emissions.
"""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    """Transition scores between tags plus start and end scores."""

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))

    def path_score(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Unnormalised score of the given tag paths: [B, T, K], [B, T], [B, T] -> [B]."""
        em = emissions.float()
        maskf = mask.float()
        first = tags[:, 0]
        score = self.start[first] + em[:, 0].gather(1, first[:, None]).squeeze(1)
        emit = em.gather(2, tags[:, :, None]).squeeze(2)  # [B, T]
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # [B, T-1]
        score = score + ((trans + emit[:, 1:]) * maskf[:, 1:]).sum(1)
        last = tags.gather(1, (mask.long().sum(1) - 1)[:, None]).squeeze(1)
        return score + self.end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log of the sum over all tag paths of exp(score): [B, T, K], [B, T] -> [B]."""
        em = emissions.float()
        alpha = self.start[None, :] + em[:, 0]  # [B, K]
        for t in range(1, em.shape[1]):
            # [B, K_from, 1] + [K_from, K_to] -> logsumexp over from -> [B, K_to]
            nxt = torch.logsumexp(alpha[:, :, None] + self.transitions[None], dim=1) + em[:, t]
            alpha = torch.where(mask[:, t, None], nxt, alpha)
        return torch.logsumexp(alpha + self.end[None, :], dim=1)

    def log_likelihood(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """log p(tags | emissions) per sequence: [B]."""
        return self.path_score(emissions, tags, mask) - self.log_partition(emissions, mask)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The highest-scoring tag path of each sequence (Viterbi), real tokens only."""
        em = emissions.float()
        score = self.start[None, :] + em[:, 0]  # [B, K]
        history = []
        for t in range(1, em.shape[1]):
            best, idx = (score[:, :, None] + self.transitions[None]).max(dim=1)  # [B, K_to]
            history.append(idx)
            score = torch.where(mask[:, t, None], best + em[:, t], score)
        score = score + self.end[None, :]
        lengths = mask.long().sum(1).tolist()
        best_last = score.argmax(1).tolist()
        hist = torch.stack(history, 1).tolist() if history else []  # [B, T-1, K]
        paths = []
        for b, n in enumerate(lengths):
            path = [best_last[b]]
            for t in range(n - 2, -1, -1):
                path.append(hist[b][t][path[-1]])
            paths.append(path[::-1])
        return paths
