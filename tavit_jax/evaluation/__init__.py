"""Scoring restorations: patch tiling, metrics, dataset scoring, reports and bytes on the wire."""
