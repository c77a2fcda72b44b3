"""`l4tui serve`: the lab over SSH (issue 7).

Importing this package quiets what asyncssh's own import says about the
cryptography library (five "DSA is deprecated" warnings): those warnings
are the dependency's business, not the instructor's, and every module here that
imports asyncssh is imported through this package first. The filter names the
category and asyncssh's modules only; warnings from anywhere else still show.
"""

from __future__ import annotations

import warnings

try:
    from cryptography.utils import CryptographyDeprecationWarning
except ImportError:  # pragma: no cover - asyncssh needs cryptography; nothing to quiet
    pass
else:
    warnings.filterwarnings(
        "ignore", category=CryptographyDeprecationWarning, module=r"asyncssh(\.|$)"
    )
