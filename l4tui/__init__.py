"""l4tui: a terminal kernel monitor and stepping debugger for a simulated L4 SMP machine.

The machine and kernel models follow Völp, "Prototypical Design and
Implementation of L4-SMP Microkernel Mechanisms"; this package holds the
debugger and its front ends (DESIGN.md §1).
"""

__version__ = "0.1.0"
