"""DAN (Dual-domain Adaptation Networks) for danstream: model, training, export.

Run the tools from the repository root with /usr/bin/python3 -m sr.dan.<tool>.
"""
import os as _os

# On a small shared CPU, OpenMP threads that spin while waiting for a descheduled peer
# make training several times slower; passive waiting avoids that. Must be set before
# torch loads its OpenMP runtime.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
