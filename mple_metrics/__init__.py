"""mple_metrics: how hard is non-autoregressive learning on your data, and which proxy pays off.

Implements Huang et al., "On the Learning of Non-Autoregressive Transformers" (ICML 2022): the
conditional total correlation C, L_NAT / L_input / L_target / L_MPLE, and exact batched kernels for
token-id BLEU, the AXE dynamic programme and the OaXE linear assignment (``mple_metrics.ops``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._extension import build_info

__all__ = ["__version__", "build_info"]
