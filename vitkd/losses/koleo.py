"""KoLeo regulariser: spread the student's CLS embeddings by their nearest-neighbour distances.

References:
- Sablayrolles et al., "Spreading vectors for similarity search" (ICLR 2019),
  https://arxiv.org/abs/1806.03198
- Oquab et al., "DINOv2" (2023), https://arxiv.org/abs/2304.07193
- facebookresearch/dinov2 at commit fc49f49: ``dinov2/loss/koleo_loss.py``,
  https://github.com/facebookresearch/dinov2/blob/fc49f49d734c767272a4ea0e18ff2ab8e60fc92d/dinov2/loss/koleo_loss.py
"""

import torch
import torch.nn.functional as F
from torch import nn


class KoLeoLoss(nn.Module):
    """``-mean_i log(min_{j != i} ||x_i - x_j|| + eps)`` on L2-normalised rows of x (B, D).

    Computed per device on the pre-head student CLS of one global crop; the caller sums over
    the global crops and applies the weight (0.1 in DINOv2). Guards:

    - B = 1 has no neighbour: the loss is 0 with a zero gradient (still part of the graph);
    - duplicate rows (identical tiles) give distance 0: that term is the finite ``-log(eps)``
      and its gradient is 0 rather than the 0/0 of a norm's derivative at 0.

    Runs in float32 outside autocast.
    """

    def forward(self, x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """Scalar KoLeo loss of embeddings (B, D)."""
        if x.ndim != 2:
            raise ValueError(f"KoLeo expects embeddings (B, D), got shape {tuple(x.shape)}")
        if x.shape[0] < 2:
            return (x * 0.0).sum()
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = F.normalize(x.float(), p=2, dim=-1, eps=eps)
            with torch.no_grad():
                # nearest neighbour of unit vectors = largest dot product, self excluded
                dots = z @ z.t()
                dots.fill_diagonal_(-2.0)
                neighbour = dots.argmax(dim=1)
            squared = (z - z[neighbour]).pow(2).sum(dim=-1)
            # sqrt has an infinite derivative at 0 (0 * inf = nan in backward): route exact
            # zeros around it so the value stays exact and their gradient is 0
            positive = squared > 0
            safe = torch.where(positive, squared, torch.ones_like(squared))
            dist = torch.where(positive, torch.sqrt(safe), torch.zeros_like(squared))
            return -torch.log(dist + eps).mean()
