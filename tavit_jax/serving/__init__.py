"""Trained models out of training: parameter files, the export format, inference, official weights."""
