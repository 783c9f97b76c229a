"""The dashboard's panes, one module per screen region."""
