"""Image transformation networks in PyTorch, one architecture per module.

Each is built from its config in :mod:`fastpercept.architectures`; :func:`build_net` picks the
class a config describes.
"""

from __future__ import annotations

from ..architectures import MultiStyleNetConfig, SRNetConfig, StyleNetConfig, WCTConfig


def build_net(config):
    """An untrained network for ``config`` (a :class:`StyleNetConfig`, :class:`MultiStyleNetConfig`
    or :class:`SRNetConfig`, :class:`WCTConfig`), in train mode."""
    if isinstance(config, MultiStyleNetConfig):
        from .multistyle import MultiStyleNet

        return MultiStyleNet(config)
    if isinstance(config, StyleNetConfig):
        from .style import StyleNet

        return StyleNet(config)
    if isinstance(config, SRNetConfig):
        from .sr import SRNet

        return SRNet(config)
    if isinstance(config, WCTConfig):
        from .wct import WCTNet

        return WCTNet(config)
    raise TypeError(f"no network for a {type(config).__name__}")
