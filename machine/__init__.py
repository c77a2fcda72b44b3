"""The simulated SMP hardware: engine, CPUs, MESI caches, TLBs, APICs, memory (thesis §3).

Imports nothing of the kernel or of any user interface (DESIGN.md §1).
"""

from machine.errors import ConfigError, MachineError
from machine.machine import Machine, PageFault
from machine.profile import Profile, load_profile

__all__ = ["ConfigError", "Machine", "MachineError", "PageFault", "Profile", "load_profile"]
