"""Tests of the controller (issue 7)."""
