"""The Textual monitor (issue 6): every pane a view of one `Session`, the console inside it."""
