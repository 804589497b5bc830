"""``torch.nn.Module`` losses over the exact kernels, in the style of ``torch.nn.CTCLoss``.

- :class:`AXELoss`: aligned cross entropy (monotonic alignment DP; paper Appendix E.3), over
  :func:`mple_metrics.ops.axe_loss` / :func:`mple_metrics.ops.axe_align`;
- :class:`OaXELoss`: order-agnostic cross entropy (linear assignment; paper Appendix E.4), over
  :func:`mple_metrics.ops.oaxe_loss` / :func:`mple_metrics.ops.oaxe_align`.

Each module holds only its hyper-parameters (no parameters, no buffers), so it can be created once
and moved or copied freely; ``align`` returns the proxy target T* (Eq. 20) that the loss scores.
See docs/losses.md.
"""

from .axe import AXELoss
from .oaxe import OaXELoss

__all__ = ["AXELoss", "OaXELoss"]
