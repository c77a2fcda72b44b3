"""`l4tui serve`: the lab over SSH (issue 7)."""
