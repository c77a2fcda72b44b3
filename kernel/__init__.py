"""The L4 SMP kernel model (thesis §2, §6, §8). Built on machine/; imports no UI library."""
