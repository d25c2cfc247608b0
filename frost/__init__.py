"""Frost: a fast, contract-aware feature store built on Feast."""
