"""Tests of the handler (issue 6)."""
