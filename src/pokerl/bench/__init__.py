"""Benchmarks: each module measures one speed or learning figure as ratios taken side by side."""
