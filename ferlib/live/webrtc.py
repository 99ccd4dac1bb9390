"""Loading the WebRTC stack safely next to TensorFlow.

aiortc's SRTP binding (pylibsrtp) links its own OpenSSL statically. TensorFlow loads its libraries with global
symbol visibility, BoringSSL included, so a pylibsrtp imported after TensorFlow binds to TensorFlow's symbols and
segfaults during `srtp_init` (`python -c "import tensorflow, pylibsrtp"` crashes). Loading pylibsrtp with
RTLD_DEEPBIND makes it use its own OpenSSL, whatever was imported before.
"""

from __future__ import annotations

import os
import sys


def preload_srtp() -> None:
    """Import pylibsrtp with RTLD_DEEPBIND (Linux); a no-op where that flag or the package does not exist."""
    if "pylibsrtp" in sys.modules or not hasattr(os, "RTLD_DEEPBIND") or not hasattr(sys, "getdlopenflags"):
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import pylibsrtp  # noqa: F401
    except ImportError:
        pass
    finally:
        sys.setdlopenflags(flags)
