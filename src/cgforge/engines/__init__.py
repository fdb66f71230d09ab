"""Simulation engines: OpenMM systems for the all-atom reference."""
